//! `hookfleet tenant`: create a tenant, print a portal link.
use super::{pool, print_json};
use hookfleet_core::config::ConfigError;
use hookfleet_core::Settings;
use hookfleet_service::tenants;

#[derive(clap::Subcommand)]
pub enum TenantCmd {
    /// Create a tenant.
    Create { id: String },
    /// Print a link that signs the tenant in to the portal (/portal). Needs
    /// api.admin_key (links are signed with it); the address is api.public_url,
    /// else http://<api.listen>.
    PortalLink {
        id: String,
        /// How long the link works (1m to 7d); default api.portal_link_ttl.
        #[arg(long)]
        ttl: Option<humantime::Duration>,
    },
}

pub async fn run(cmd: TenantCmd, settings: &Settings) -> anyhow::Result<()> {
    match cmd {
        TenantCmd::Create { id } => {
            let t = tenants::create_tenant(&pool(settings)?, &id).await?;
            print_json(&t)
        }
        TenantCmd::PortalLink { id, ttl } => portal_link(settings, &id, ttl.map(Into::into)).await,
    }
}

async fn portal_link(
    settings: &Settings,
    id: &str,
    ttl: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    let admin_key = settings.api.admin_key.as_ref().ok_or_else(|| {
        ConfigError::missing(
            "api.admin_key",
            "portal links are signed with it, and the API that serves the portal checks them with it",
        )
    })?;
    let ttl = ttl.unwrap_or(settings.api.portal_link_ttl);
    anyhow::ensure!(
        hookfleet_core::bounds::portal_link_ttl_ok(ttl),
        "--ttl must be from 1m to 7d"
    );
    let base = settings
        .api
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", settings.api.listen));
    let signer = hookfleet_api::portal::token::Signer::new(admin_key.expose());
    let link = tenants::issue_portal_link(
        &pool(settings)?,
        &signer,
        id,
        None,
        ttl.as_secs() as i64,
        &base,
    )
    .await?;
    print_json(&link)
}
