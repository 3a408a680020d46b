from coral_ft.cli.app import main

main()
