from planeteer_action.action.main import main

main()
