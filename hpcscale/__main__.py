from hpcscale.cli import main

main()
