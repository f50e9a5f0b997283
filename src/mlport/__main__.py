from mlport.cli import main

main()
