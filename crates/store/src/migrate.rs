//! Schema migrations: the SQL files of `migrations/` at the top of the repository,
//! embedded in the binary. Re-running is harmless; replicas starting together
//! serialise on an advisory lock (refinery takes none of its own).
use anyhow::Context as _;
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// Arbitrary constant naming hookfleet's migration lock.
const LOCK_KEY: i64 = 0x686f_6f6b_666c_6565; // "hookflee"

/// Creates the database named in `url` when it does not exist (connecting to the
/// `postgres` maintenance database of the same server).
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let cfg: tokio_postgres::Config = url.parse().context("parsing database.url")?;
    let Some(name) = cfg.get_dbname().map(str::to_owned) else {
        return Ok(());
    };
    if try_connect(&cfg).await.is_ok() {
        return Ok(());
    }
    let mut admin = cfg.clone();
    admin.dbname("postgres");
    let client = try_connect(&admin)
        .await
        .context("connecting to the `postgres` database to create hookfleet's")?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match client
        .batch_execute(&format!("CREATE DATABASE {quoted}"))
        .await
    {
        Ok(()) => tracing::info!(database = %name, "Created the database."),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {}
        Err(e) => return Err(e).context(format!("creating database {name}")),
    }
    Ok(())
}

async fn try_connect(cfg: &tokio_postgres::Config) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) =
        tokio::time::timeout(std::time::Duration::from_secs(10), cfg.connect(NoTls))
            .await
            .context("timed out connecting to Postgres")??;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Applies every pending migration; returns how many ran.
pub async fn run(url: &str) -> anyhow::Result<usize> {
    ensure_database(url).await?;
    let cfg: tokio_postgres::Config = url.parse().context("parsing database.url")?;
    let mut client = try_connect(&cfg)
        .await
        .context("connecting to Postgres (database.url)")?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .context("taking the migration lock")?;
    let result = embedded::migrations::runner().run_async(&mut client).await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    let report = result.context("applying migrations")?;
    Ok(report.applied_migrations().len())
}
