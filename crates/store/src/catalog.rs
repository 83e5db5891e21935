//! The event type catalog as routing and ingest use it: each active type with its
//! JSON Schema compiled once per reload (the `jsonschema` crate), so validating
//! an event's `data` costs no schema parsing.
use anyhow::Context as _;
use deadpool_postgres::Pool;
use hookfleet_core::envelope::InvalidEnvelope;
use hookfleet_core::Envelope;
use std::collections::HashMap;
use std::sync::Arc;

/// Compiled catalog: type name → validator of its `data`.
#[derive(Default)]
pub struct Catalog {
    types: HashMap<String, Arc<jsonschema::Validator>>,
    /// Retry schedules of the types that have their own.
    retry: HashMap<String, hookfleet_core::retry::RetrySchedule>,
    /// Each type as written, by name: the OpenAPI document's `webhooks`.
    described: std::collections::BTreeMap<String, Described>,
}

/// An active type as the catalog has it: what a receiver is told about it.
#[derive(Debug, Clone)]
pub struct Described {
    pub description: String,
    /// The JSON Schema of `data`, as stored.
    pub schema: serde_json::Value,
    /// An example `data`.
    pub example: serde_json::Value,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("types", &self.types.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Compiles a schema, or says why it cannot be used.
pub fn compile(schema: &serde_json::Value) -> Result<jsonschema::Validator, String> {
    jsonschema::validator_for(schema).map_err(|e| e.to_string())
}

/// The first validation error of `data` against `v`, if any (as "at /path: message").
pub fn first_error(v: &jsonschema::Validator, data: &serde_json::Value) -> Option<String> {
    v.iter_errors(data).next().map(|e| {
        let path = e.instance_path().to_string();
        let at = if path.is_empty() {
            "/".to_owned()
        } else {
            path
        };
        format!("at {at}: {e}")
    })
}

impl Catalog {
    /// Loads the non-deprecated types; a schema that does not compile is logged and
    /// the type accepts any object (an operator's typo must not drop events).
    pub async fn load(pool: &Pool) -> anyhow::Result<Catalog> {
        let client = pool.get().await.context("connecting to Postgres")?;
        let rows = client
            .query(
                "SELECT name, schema, retry_schedule, description, example FROM event_types WHERE NOT deprecated",
                &[],
            )
            .await?;
        let (mut types, mut retry) = (HashMap::new(), HashMap::new());
        let mut described = std::collections::BTreeMap::new();
        for r in rows {
            let name: String = r.get(0);
            let schema: serde_json::Value = r.get(1);
            let schedule: Option<String> = r.get(2);
            if let Some(s) = schedule {
                match hookfleet_core::retry::RetrySchedule::parse(&s) {
                    Ok(s) => {
                        retry.insert(name.clone(), s);
                    }
                    Err(e) => {
                        tracing::error!(event_type = %name, error = %e, "Ignoring an unusable retry schedule.")
                    }
                }
            }
            let v = compile(&schema).unwrap_or_else(|e| {
                tracing::error!(event_type = %name, error = %e, "Event type schema does not compile; accepting any object.");
                compile(&serde_json::json!({"type": "object"})).unwrap_or_else(|_| unreachable_validator())
            });
            types.insert(name.clone(), Arc::new(v));
            described.insert(
                name,
                Described {
                    description: r.get(3),
                    schema,
                    example: r.get(4),
                },
            );
        }
        Ok(Catalog {
            types,
            retry,
            described,
        })
    }

    /// The active types as written, by name.
    pub fn described(&self) -> &std::collections::BTreeMap<String, Described> {
        &self.described
    }

    /// Every type's own retry schedule.
    pub fn retry_schedules(&self) -> impl Iterator<Item = &hookfleet_core::retry::RetrySchedule> {
        self.retry.values()
    }

    /// The type's own retry schedule, if it has one.
    pub fn retry_schedule(&self, name: &str) -> Option<&hookfleet_core::retry::RetrySchedule> {
        self.retry.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.types.contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.types.len()
    }

    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// Checks an envelope's type and `data` against the catalog.
    pub fn check(&self, env: Envelope) -> Result<Envelope, InvalidEnvelope> {
        self.check_parsed(env).map(|(env, _)| env)
    }

    /// [`Catalog::check`], also returning `data` as parsed for the check: the
    /// router evaluates endpoint filters on it instead of parsing it again.
    pub fn check_parsed(
        &self,
        env: Envelope,
    ) -> Result<(Envelope, serde_json::Value), InvalidEnvelope> {
        let Some(v) = self.types.get(&env.event_type) else {
            return Err(InvalidEnvelope::UnknownType(env.event_type));
        };
        let data: serde_json::Value =
            serde_json::from_str(env.data.get()).map_err(|e| InvalidEnvelope::BadField {
                field: "data",
                reason: e.to_string(),
            })?;
        if let Some(reason) = first_error(v, &data) {
            return Err(InvalidEnvelope::DataSchema {
                event_type: env.event_type,
                reason,
            });
        }
        Ok((env, data))
    }
}

#[allow(clippy::expect_used)]
fn unreachable_validator() -> jsonschema::Validator {
    // `true` is a valid schema in every draft.
    jsonschema::validator_for(&serde_json::Value::Bool(true)).expect("the `true` schema compiles")
}

/// One event type as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub deprecated: bool,
    pub description: String,
}

/// Every event type, deprecated ones included, by name (`hookfleet event-type list`).
pub async fn list(pool: &Pool) -> anyhow::Result<Vec<Listed>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            "SELECT name, deprecated, description FROM event_types ORDER BY name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Listed {
            name: r.get(0),
            deprecated: r.get(1),
            description: r.get(2),
        })
        .collect())
}
