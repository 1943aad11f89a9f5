"""Developer tools of egm_ros, kept out of the installed package: the benchmarks
(``python -m dev.bench``, ``make bench``), the soak run (``python -m dev.soak``, ``make soak``)
and the scripted OpenAI-compatible server the tests and the soak run talk to
(``python -m dev.scripted_server``). They share one node-process helper
(:mod:`dev.node_process`) and one set of statistics helpers (:mod:`dev.stats`)."""
