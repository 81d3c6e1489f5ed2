//! [`Inspect`]: the reads and writes tests need and no use case does (feature `testing`).
//! Compiled once per backend (see `crate::ops`).

use chrono::{DateTime, Utc};
use facerec_core::person::person_from_new;
use facerec_core::store::StoreResult;
use facerec_core::{Actor, ApiKey, CollectionId, KeyId, NewPerson, Person, Scope, Scopes};

use super::{bind, This};
use crate::backend::Hooks;
use crate::error::{db_error, Taken};
use crate::rows::PersonRow;
use crate::testing::Inspect;

const SELECT_PERSON_BY_EXTERNAL_ID: &str = concat!(
    "SELECT ",
    crate::statements::person_columns!(),
    " FROM persons WHERE external_id = $1 AND collection_id = $2"
);

#[async_trait::async_trait]
impl Inspect for This {
    async fn create_person(
        &self,
        collection: CollectionId,
        new: NewPerson,
        actor: &Actor,
    ) -> StoreResult<Person> {
        let person = person_from_new(&new, Utc::now())?;
        self.write(async |tx| {
            let taken = Taken::external_id(person.external_id.as_deref());
            tx.run(bind::creation(collection, &person, actor), taken)
                .await
        })
        .await?;
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

    async fn fill_keys(
        &self,
        collection: CollectionId,
        count: u32,
        revoked_at: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<KeyId>> {
        let keys: Vec<ApiKey> = (0..count)
            .map(|_| ApiKey {
                id: KeyId::new(),
                collection_id: collection,
                label: "filler".into(),
                scopes: Scopes::NONE.with(Scope::Recognize),
                created_at: Utc::now(),
                expires_at: None,
                revoked_at,
                last_used_at: None,
            })
            .collect();
        let statements: Vec<_> = keys
            .iter()
            .map(|key| bind::insert_key(key, &format!("filler-{}", key.id)))
            .collect();
        self.write(async |tx| tx.run(statements, Taken::Nothing).await)
            .await?;
        Ok(keys.into_iter().map(|k| k.id).collect())
    }
}
