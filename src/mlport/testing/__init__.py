"""Tools for testing code written against mlport: emulators, the shared local CA, the leak check."""
