from voxmith.cli.main import main

main()
