//! Tenants: the unit of isolation.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use talky_actors::ids::TenantId;
use uuid::Uuid;

use super::DbError;
use super::schema::tenants;

/// A stored tenant.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenants)]
pub struct Tenant {
    /// Primary key.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl Tenant {
    /// The typed id.
    pub fn tenant_id(&self) -> TenantId {
        TenantId(self.id)
    }
}

/// Creates a tenant.
pub async fn create(conn: &mut AsyncPgConnection, name: &str) -> Result<Tenant, DbError> {
    let tenant = Tenant {
        id: TenantId::new().0,
        name: name.to_string(),
        created_at: Utc::now(),
    };
    Ok(diesel::insert_into(tenants::table)
        .values(&tenant)
        .returning(Tenant::as_returning())
        .get_result(conn)
        .await?)
}

/// Finds a tenant by name (the demo reuses its tenant).
pub async fn find_by_name(
    conn: &mut AsyncPgConnection,
    name: &str,
) -> Result<Option<Tenant>, DbError> {
    Ok(tenants::table
        .filter(tenants::name.eq(name))
        .order(tenants::id)
        .select(Tenant::as_select())
        .first(conn)
        .await
        .optional()?)
}
