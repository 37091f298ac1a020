"""Developer tooling that the product never imports: the benchmark, the load test, hub-like model folders,
screenshots and the browser helpers the tests share."""
