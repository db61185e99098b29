"""offgridperf's target agent: installed in the Django app under test.

Add `"offgridperf_agent"` to INSTALLED_APPS and `"offgridperf_agent.middleware.AgentMiddleware"`
first in MIDDLEWARE, and set OFFGRIDPERF_AGENT_REDIS_URL and OFFGRIDPERF_AGENT_KEY (the key the
workbench signs its run tags with). Requests a load-test run tagged with a valid signature are
measured (server, CPU, database and cache time, queries, N+1 groups) and aggregated per
(run, step, second); everything else costs one header lookup.

The same package runs the process agent (`offgridperf_agent.process`): GC statistics each
second and tracemalloc captures on request.
"""
