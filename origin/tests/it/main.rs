//! The origin's integration tests, one binary (`cargo test -p bunting-origin
//! --test it`; a module's tests alone: `--test it rbac::`). Store tests run
//! on SQLite and PostgreSQL through [`both!`](common); the modules share
//! [`common`] (stores, schemas, the OpenAPI response check).

#[macro_use]
mod common;

mod aggregate;
mod api;
mod changes;
mod cli;
mod cli_apply;
mod cli_pack;
mod cli_store;
mod console;
mod definitions;
mod docs_access;
mod events;
mod experiments_api;
mod experiments_store;
mod guarded_monitor;
mod guarded_rollouts;
mod hygiene;
mod incremental;
mod isolation;
mod migration;
mod monitor;
mod monitor_simulation;
mod openapi;
mod people;
mod publish;
mod rbac;
mod rollback;
mod rollup;
mod serve;
mod signin;
mod store;
mod webhooks;
