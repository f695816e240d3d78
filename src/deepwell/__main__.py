from deepwell.cli import main

main()
