//! The connection pool.
use anyhow::Context as _;
use deadpool_postgres::{Config, PoolConfig, Runtime, Timeouts};
use std::time::Duration;
use tokio_postgres::NoTls;

pub use deadpool_postgres::Pool;

/// A pool of `size` connections to `url`. Waiting for, creating and recycling a
/// connection are each bounded to 5 s, so a down database surfaces as an error.
pub fn connect(url: &str, size: usize) -> anyhow::Result<Pool> {
    let mut cfg = Config::new();
    cfg.url = Some(url.to_owned());
    let t = Some(Duration::from_secs(5));
    cfg.pool = Some(PoolConfig {
        max_size: size,
        timeouts: Timeouts {
            wait: t,
            create: t,
            recycle: t,
        },
        ..Default::default()
    });
    cfg.create_pool(Some(Runtime::Tokio1), NoTls)
        .context("creating the Postgres pool (database.url)")
}

/// Whether PostgreSQL answers `SELECT 1` through `pool` (for `/readyz`).
pub async fn ping(pool: &Pool) -> anyhow::Result<()> {
    let c = pool.get().await.context("connecting to Postgres")?;
    c.simple_query("SELECT 1").await?;
    Ok(())
}
