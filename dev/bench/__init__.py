"""Benchmarks of egm_ros (``make bench``): what the package adds around the engine, end to end
through ROS topics, concurrency, memory, and several nodes sharing one server. They print
numbers and write one JSON file; no test asserts a time."""
