"""The Google Vertex AI provider of mlport (to come) and its local Vertex AI emulator.

Until the provider lands this distribution declares no ``mlport.providers`` entry point: it ships
:mod:`mlport_vertex.emulator`, which tests and users drive with the real google-cloud-aiplatform SDK.
"""
