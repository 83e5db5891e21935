//! `hookfleet tenant`: create, list, show and delete tenants, list their API
//! keys, print a portal link (the API's `/api/v1/tenants…`).
use super::{pool, print_json};
use hookfleet_core::config::ConfigError;
use hookfleet_core::Settings;
use hookfleet_service::tenants;

#[derive(clap::Subcommand)]
pub enum TenantCmd {
    /// Create a tenant.
    Create { id: String },
    /// List tenants, by id, a page at a time (prints `next_cursor`).
    List {
        /// The `next_cursor` of the previous page.
        #[arg(long)]
        cursor: Option<String>,
        /// Page size (1-250).
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Show a tenant with its webhook and active key counts.
    Get { id: String },
    /// Delete a tenant: revoke its API keys, end its portal sessions, delete
    /// its webhooks (messages waiting in their queues become dead letters).
    Delete { id: String },
    /// List a tenant's API keys (ids, created, last used, revoked); never the key.
    Keys {
        id: String,
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Print a link that signs the tenant in to the portal (/portal). Needs
    /// api.admin_key or api.admin_keys (the first signs links); the address is api.public_url,
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
        TenantCmd::List { cursor, limit } => {
            let q = tenants::PageQuery {
                cursor,
                limit: Some(limit),
            };
            print_json(&tenants::list_tenants(&pool(settings)?, &q).await?)
        }
        TenantCmd::Get { id } => print_json(&tenants::get_tenant(&pool(settings)?, &id).await?),
        TenantCmd::Delete { id } => {
            let pool = pool(settings)?;
            let ctx = hookfleet_service::Ctx::standalone(settings, &pool);
            print_json(&tenants::delete_tenant(&ctx, &id).await?)
        }
        TenantCmd::Keys { id, cursor, limit } => {
            let q = tenants::PageQuery {
                cursor,
                limit: Some(limit),
            };
            print_json(&tenants::list_api_keys(&pool(settings)?, &id, &q).await?)
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
    // The first admin key signs new links (`api.admin_key` is it, after loading).
    let signer = hookfleet_api::portal::token::Keys::new([admin_key.expose()])
        .ok_or_else(|| anyhow::anyhow!("no admin key"))?;
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
