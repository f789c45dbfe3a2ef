//! The end-to-end tests of the hub, one test binary (one link of the whole stack): each module
//! starts the real assembly (`mekong_hub`, through `mekong_tests::TestHub`) against the real Kafka
//! broker of the test command (`./deploy/test.sh`).

mod adapters;
mod admin;
mod broker_down;
mod console;
mod hostile;
mod http;
mod interop;
mod publish;
mod quota;
mod subscribe;
mod tls;
