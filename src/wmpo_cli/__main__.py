from wmpo_cli.cli import main

main()
