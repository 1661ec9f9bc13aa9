//! The schema: queries over the customer, order and analytics views.

pub mod analytics;
pub mod operations;
pub mod subscription;
pub mod types;

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, EmptyMutation, Enum, InputObject, Object, Result, Schema, ID};
use auth::{Principal, Role};
use chrono::{DateTime, Utc};

use self::analytics::Analytics;
use self::operations::{ProjectionInfo, ViewerInfo};
use self::types::{
    decode_cursor, encode_cursor, order_page, page_size, Customer, Order, OrderStatus,
};
use crate::error::{self, bad_input, internal, not_found};
use crate::rows::kept;
use crate::store::Store;
use readmodel::models::customer::{CustomerFilter, CustomerSort as RowOrder};

/// Largest page any connection returns.
pub const MAX_PAGE: i32 = 100;

/// The schema type.
pub type ApiSchema = Schema<Query, EmptyMutation, subscription::SubscriptionRoot>;

/// The caller of a request (absent: anonymous).
#[derive(Debug, Clone)]
pub struct Viewer(pub Option<Principal>);

/// What the `projections` field reads.
#[derive(Clone)]
pub struct StatusSource {
    pub log: eventlog::EventLog,
    pub db: readmodel::ReadDb,
}

/// The authenticated caller, or UNAUTHENTICATED.
pub(crate) fn viewer<'a>(ctx: &'a Context<'_>) -> Result<&'a Principal> {
    ctx.data::<Viewer>()?
        .0
        .as_ref()
        .ok_or_else(|| error::unauthenticated("a bearer token is required"))
}

fn require(ctx: &Context<'_>, roles: &[Role]) -> Result<()> {
    viewer(ctx)?.require(roles).map_err(error::auth)
}

/// Whether the caller may read what belongs to `owner`.
pub(crate) fn may_read(p: &Principal, owner: &str) -> bool {
    match p.role {
        Role::Admin | Role::Analyst | Role::Service => true,
        Role::Customer => own_id(p).is_some_and(|id| id == owner),
    }
}

/// The customer `id`, or `NOT_FOUND`.
async fn customer_by_id(ctx: &Context<'_>, id: &str) -> Result<Customer> {
    let store = ctx.data::<Store>()?;
    let read = async { Ok::<_, sqlx::Error>(store.customer(id).await?.map(Arc::new)) };
    let row = kept(ctx, format!("customer:{id}"), read)
        .await
        .map_err(|e| internal(&e))?;
    row.map(Customer).ok_or_else(|| not_found("customer"))
}

/// A customer's own user id (for an identity provider's customer, the user
/// they signed up as; `None` before sign-up).
fn own_id(p: &Principal) -> Option<String> {
    p.user_id().map(|u| u.to_string())
}

/// Sort orders of `customers`.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum CustomerSort {
    #[default]
    RegisteredAtDesc,
    RegisteredAtAsc,
    EmailAsc,
}

/// Filters of `customers`.
#[derive(InputObject, Debug, Default)]
pub struct CustomersFilter {
    /// `active`, `deactivated` or `forgotten`.
    pub status: Option<String>,
    pub email_prefix: Option<String>,
    pub registered_after: Option<DateTime<Utc>>,
}

/// The query root.
pub struct Query;

#[Object]
impl Query {
    /// The calling customer.
    async fn me(&self, ctx: &Context<'_>) -> Result<Customer> {
        let p = viewer(ctx)?;
        if p.role != Role::Customer {
            return Err(not_found("customer"));
        }
        let id = own_id(p).ok_or_else(|| not_found("customer"))?;
        customer_by_id(ctx, &id).await
    }

    /// A customer: customers only themselves; another's id answers as not found.
    async fn customer(&self, ctx: &Context<'_>, id: ID) -> Result<Customer> {
        let p = viewer(ctx)?;
        if !may_read(p, &id) {
            return Err(not_found("customer"));
        }
        customer_by_id(ctx, &id).await
    }

    /// All customers (admin or analyst).
    async fn customers(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<CustomersFilter>,
        #[graphql(default)] order_by: CustomerSort,
    ) -> Result<Connection<String, Customer>> {
        require(ctx, &[Role::Admin, Role::Analyst])?;
        let limit = page_size(first)?;
        let after = after.as_deref().map(decode_cursor).transpose()?;
        let filter = filter.unwrap_or_default();
        let f = CustomerFilter {
            status: filter.status,
            email_prefix: filter.email_prefix,
            registered_after: filter
                .registered_after
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
        };
        let order = match order_by {
            CustomerSort::RegisteredAtDesc => RowOrder::RegisteredNewest,
            CustomerSort::RegisteredAtAsc => RowOrder::RegisteredOldest,
            CustomerSort::EmailAsc => RowOrder::Email,
        };
        let mut rows = ctx
            .data::<Store>()?
            .customers(&f, order, after.as_ref(), limit + 1)
            .await
            .map_err(|e| internal(&e))?;
        let has_next = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let mut connection = Connection::new(after.is_some(), has_next);
        connection.edges.extend(rows.into_iter().map(|r| {
            let key = if order == RowOrder::Email {
                r.email.clone()
            } else {
                r.registered_at.clone()
            };
            Edge::new(encode_cursor(&key, &r.user_id), Customer(Arc::new(r)))
        }));
        Ok(connection)
    }

    /// An order: customers only their own; another's answers as not found.
    async fn order(&self, ctx: &Context<'_>, id: ID) -> Result<Order> {
        let p = viewer(ctx)?;
        let store = ctx.data::<Store>()?;
        let read = async { Ok::<_, sqlx::Error>(store.order(&id).await?.map(Arc::new)) };
        let row = kept(ctx, format!("order:{}", id.as_str()), read)
            .await
            .map_err(|e| internal(&e))?;
        match row {
            Some(r) if may_read(p, &r.customer_id) => Ok(Order(r)),
            _ => Err(not_found("order")),
        }
    }

    /// Orders, newest first: customers see only their own (customerId defaults to them).
    async fn orders(
        &self,
        ctx: &Context<'_>,
        customer_id: Option<ID>,
        status: Option<OrderStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Order>> {
        let p = viewer(ctx)?;
        let customer = match (p.role, customer_id) {
            (Role::Customer, Some(id)) if Some(id.as_str()) != own_id(p).as_deref() => {
                return Ok(Connection::new(false, false))
            }
            (Role::Customer, _) => match own_id(p) {
                Some(id) => Some(id),
                None => return Ok(Connection::new(false, false)),
            },
            (_, id) => id.map(|i| i.0),
        };
        order_page(ctx, customer.as_deref(), status, first, after).await
    }

    /// Business analytics (admin or analyst).
    async fn analytics(&self, ctx: &Context<'_>) -> Result<Analytics> {
        require(ctx, &[Role::Admin, Role::Analyst])?;
        Ok(Analytics)
    }

    /// The read models' projections (admin).
    async fn projections(&self, ctx: &Context<'_>) -> Result<Vec<ProjectionInfo>> {
        operations::projections(ctx).await
    }

    /// The caller (any authenticated role).
    async fn viewer(&self, ctx: &Context<'_>) -> Result<ViewerInfo> {
        operations::viewer_info(ctx)
    }
}

/// Rejects an empty ID early (a cheap sanity check on input).
pub fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 100 {
        return Err(bad_input("invalid id"));
    }
    Ok(())
}
