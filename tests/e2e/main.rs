//! End-to-end tests against real RabbitMQ and PostgreSQL. Each test owns a vhost
//! and a database (see `hookfleet_tests::TestEnv`), so they run in parallel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod api_telemetry;
mod broker_tls;
mod control;
mod delivery;
mod deploy;
mod doc_examples;
mod egress;
mod endpoints;
mod fifo;
mod filters;
mod fuzz;
mod health;
mod invalid;
mod isolation;
mod keys;
mod openapi;
mod openapi_client;
mod operations;
mod portal;
mod producers;
mod python_sdk;
mod receivers;
mod resilience;
mod retention;
mod retry;
mod routing;
mod schemathesis;
mod security;
mod sharing;
mod slow_clients;
mod tenants;
mod traces;
mod unroutable;
