from coinpilot_pipelines.cli import main

main()
