//! Who is calling: the admin (the operator: the admin key, or the CLI) or a
//! tenant. The admin acting on webhooks works on the tenant-less scope, or on
//! one tenant's when it names it (`Hookfleet-Tenant`, [`Caller::AdminFor`]); a
//! tenant sees only its own.
use crate::error::{ServiceError, ServiceResult};
use hookfleet_store::dead_letters::{Filter, Scope};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    /// The admin acting for one tenant: that tenant's scope, but still the
    /// admin for admin-only calls (the catalog, tenants, keys).
    AdminFor(String),
    Tenant(String),
}

impl Caller {
    /// The tenant scope for webhooks and deliveries: `None` = tenant-less.
    pub fn scope(&self) -> Option<&str> {
        match self {
            Caller::Admin => None,
            Caller::AdminFor(t) | Caller::Tenant(t) => Some(t),
        }
    }

    pub fn require_admin(&self) -> ServiceResult<()> {
        match self {
            Caller::Admin | Caller::AdminFor(_) => Ok(()),
            Caller::Tenant(_) => Err(ServiceError::Forbidden(
                "this call needs the admin key".into(),
            )),
        }
    }

    /// Recorded with every dead-letter action.
    pub fn actor(&self) -> String {
        match self {
            Caller::Admin => "api:admin".into(),
            Caller::AdminFor(t) => format!("api:admin:tenant:{t}"),
            Caller::Tenant(t) => format!("api:tenant:{t}"),
        }
    }

    /// The dead-letter scope: the admin sees all, a tenant (or the admin
    /// acting for one) its own; a filter naming another tenant is refused.
    pub fn dead_letter_scope(&self, f: &Filter) -> ServiceResult<Scope<'_>> {
        match self {
            Caller::Admin => Ok(Scope::All),
            Caller::AdminFor(t) | Caller::Tenant(t) => {
                if f.tenant_id.as_deref().is_some_and(|want| want != t) {
                    return Err(ServiceError::Forbidden(match self {
                        Caller::AdminFor(_) => {
                            "tenant_id names another tenant than the Hookfleet-Tenant header".into()
                        }
                        _ => "a tenant key acts on its own tenant's dead letters only".into(),
                    }));
                }
                Ok(Scope::Tenant(t))
            }
        }
    }
}
