from .action.main import main

main()
