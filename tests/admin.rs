//! The mismatch store, privacy, reports, admin API and dashboard on real services: a shadow
//! proxy between fake upstreams on loopback, its comparisons recorded into a real store
//! (SQLite file, fresh PostgreSQL database), then read back through the API, the HTML report
//! and headless Chromium.

mod api;
mod binary;
mod cli;
mod fixture;
mod privacy;
mod store;
mod ui;
mod webdriver;
