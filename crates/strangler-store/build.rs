//! `sqlx::migrate!` embeds the migration files when this crate compiles; cargo does not know to
//! compile it again when a migration is added, so this build script tells it to.

fn main() {
    for dir in ["../../migrations/postgres", "../../migrations/sqlite"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
