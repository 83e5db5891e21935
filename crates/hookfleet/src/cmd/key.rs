//! `hookfleet key`: a tenant's API keys.
use super::{api_error, pool, print_json};
use hookfleet_core::Settings;

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
            let k = hookfleet_api::tenants::create_api_key(&pool, &tenant)
                .await
                .map_err(api_error)?;
            print_json(&k)
        }
        KeyCmd::Revoke { key_id } => {
            hookfleet_api::tenants::revoke_api_key(&pool, &key_id)
                .await
                .map_err(api_error)?;
            out!("{key_id} revoked");
            Ok(())
        }
    }
}
