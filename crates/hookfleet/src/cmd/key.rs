//! `hookfleet key`: a tenant's API keys.
use super::{pool, print_json};
use hookfleet_core::Settings;
use hookfleet_service::tenants;

#[derive(clap::Subcommand)]
pub enum KeyCmd {
    /// Issue an API key for a tenant; the key is printed once.
    Create { tenant: String },
    /// Revoke an API key by its id (key_…).
    Revoke { key_id: String },
}

pub async fn run(cmd: KeyCmd, settings: &Settings) -> anyhow::Result<()> {
    let pool = pool(settings)?;
    match cmd {
        KeyCmd::Create { tenant } => {
            let k = tenants::create_api_key(&pool, &tenant).await?;
            print_json(&k)
        }
        KeyCmd::Revoke { key_id } => {
            tenants::revoke_api_key(
                &hookfleet_service::Ctx::standalone(settings, &pool),
                &key_id,
            )
            .await?;
            out!("{key_id} revoked");
            Ok(())
        }
    }
}
