"""`coinpilot simulate`: a live period on simulated time, with the project's real sensors, schedules and jobs."""
