//! For tests and benchmarks only (feature `testing`, off in the service): throwaway PostgreSQL
//! databases, and [`Inspect`], the reads that tests need but no use case does.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use facerec_core::*;
use sqlx::Connection;

use crate::rows::PersonRow;
use crate::sql::{db_error, Backend};
use crate::store_impl::Hooks;
use crate::{redact, PostgresStore, SqliteStore, StoreOptions};

/// A store with the test-only operations.
#[async_trait]
pub trait Inspect: Store {
    /// A person without faces (the service creates persons only with a photo, or by name).
    async fn create_person(
        &self,
        collection: CollectionId,
        person: NewPerson,
        actor: &Actor,
    ) -> StoreResult<Person>;
    async fn find_person_by_external_id(
        &self,
        collection: CollectionId,
        external_id: &str,
    ) -> StoreResult<Option<Person>>;
}

/// Opens a store like [`crate::open`], with the test-only operations.
pub async fn open(url: &str, options: &StoreOptions) -> StoreResult<Arc<dyn Inspect>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url, options).await?))
    } else {
        Ok(Arc::new(PostgresStore::open(url, options).await?))
    }
}

const SELECT_PERSON_BY_EXTERNAL_ID: &str = concat!(
    "SELECT ",
    crate::sql::person_columns!(),
    " FROM persons WHERE external_id = $1 AND collection_id = $2"
);
/// The same operations on both backends, over the stores' [`Hooks`]. (A macro, as `impl_store!`
/// is: `Inspect` is an `async_trait`.)
macro_rules! impl_inspect {
    ($store:ty, $db:ty) => {
        #[async_trait]
        impl Inspect for $store {
            async fn create_person(
                &self,
                collection: CollectionId,
                new: NewPerson,
                actor: &Actor,
            ) -> StoreResult<Person> {
                let person = facerec_core::store::person_from_new(&new, Utc::now())?;
                let mut writer = self.writer().await?;
                let mut tx = writer.begin().await.map_err(db_error)?;
                let statements = <$db>::creation(collection, &person, actor);
                let taken = crate::sql::Taken::external_id(person.external_id.as_deref());
                <$db>::execute(&mut tx, statements, taken).await?;
                tx.commit().await.map_err(db_error)?;
                Ok(person)
            }

            async fn find_person_by_external_id(
                &self,
                collection: CollectionId,
                external_id: &str,
            ) -> StoreResult<Option<Person>> {
                let row: Option<PersonRow> = sqlx::query_as(SELECT_PERSON_BY_EXTERNAL_ID)
                    .bind(external_id.to_owned())
                    .bind(crate::columns::Id::from(collection))
                    .fetch_optional(self.readers())
                    .await
                    .map_err(db_error)?;
                Ok(row.map(Person::from))
            }
        }
    };
}

impl_inspect!(SqliteStore, sqlx::Sqlite);
impl_inspect!(PostgresStore, sqlx::Postgres);

/// Creates an empty database, named `{prefix}_{unique suffix}`, on the server `admin_url` points
/// to, and returns its URL.
pub async fn create_database(admin_url: &str, prefix: &str) -> StoreResult<String> {
    create_named_database(
        admin_url,
        &format!("{prefix}_{}", uuid::Uuid::now_v7().simple()),
    )
    .await
}

/// Creates an empty database with exactly this name and returns its URL.
pub async fn create_named_database(admin_url: &str, name: &str) -> StoreResult<String> {
    let mut conn = admin(admin_url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(database_url(admin_url, name))
}

/// The URL of database `name` on the server `admin_url` points to.
pub fn database_url(admin_url: &str, name: &str) -> String {
    let server = admin_url.rsplit_once('/').map_or(admin_url, |(s, _)| s);
    format!("{server}/{name}")
}

/// Drops the database `url` names (its connections are ended), as an outage would take it away.
pub async fn drop_database(admin_url: &str, url: &str) -> StoreResult<()> {
    let name = url.rsplit_once('/').map_or(url, |(_, n)| n);
    let mut conn = admin(admin_url).await?;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

async fn admin(admin_url: &str) -> StoreResult<sqlx::PgConnection> {
    sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(|e| StoreError::Database(format!("connecting to {}: {e}", redact(admin_url))))
}
