//! `hookfleet secrets reseal`: the last step of a key rotation.
use super::pool;
use hookfleet_core::config::ConfigError;
use hookfleet_core::Settings;

#[derive(clap::Subcommand)]
pub enum SecretsCmd {
    /// Rewrite every endpoint's signing secrets under the first key of
    /// secrets.encryption_keys (the last step of a key rotation; also seals
    /// secrets stored before encryption was turned on). Prints the counts.
    Reseal,
}

pub async fn run(cmd: SecretsCmd, settings: &Settings) -> anyhow::Result<()> {
    let SecretsCmd::Reseal = cmd;
    let Some(keys) = &settings.encryption_keys else {
        return Err(ConfigError::missing("secrets.encryption_keys", "nothing to seal with").into());
    };
    let r = hookfleet_store::endpoints::reseal_all(&pool(settings)?, keys).await?;
    out!(
        "{} secret(s) resealed under key `{}`, {} already under it, {} could not be opened",
        r.resealed,
        keys.current(),
        r.current,
        r.failed
    );
    if r.failed > 0 {
        anyhow::bail!("{} secret(s) are sealed with a key secrets.encryption_keys does not list; add it back, then reseal again", r.failed);
    }
    Ok(())
}
