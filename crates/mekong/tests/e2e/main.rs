//! The end-to-end tests of the `mekong` binary, one test binary (one link of the whole stack):
//! each module runs `mekong` processes against the real Kafka broker of the test command
//! (`./deploy/test.sh`), or checks the deployment files that start them.

mod cli;
mod deadlines;
mod delivery;
mod deployment;
mod evidence;
mod floods;
mod kafka_security;
mod observability;
mod operator;
mod subscriptions;
mod tls;
