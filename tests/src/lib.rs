//! Helpers shared by the integration tests: finding the services the test script started.
#![forbid(unsafe_code)]
