//! The two column types whose storage differs between the backends. Each knows how it is kept in
//! SQLite and in PostgreSQL, so the statements and row mappings in `crate::statements` are written once.

use facerec_core::{CaptureId, ClusterId, CollectionId, FaceId, KeyId, PersonId};
use facerec_types::NormalizedEmbedding;
use pgvector::Vector;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Postgres, Sqlite, Type};
use uuid::Uuid;

/// A person or face id: TEXT (a hyphenated UUID) in SQLite, `uuid` in PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Id(pub Uuid);

impl From<PersonId> for Id {
    fn from(id: PersonId) -> Self {
        Self(id.0)
    }
}

impl From<FaceId> for Id {
    fn from(id: FaceId) -> Self {
        Self(id.0)
    }
}

/// Ids of the other kinds convert alike.
macro_rules! id_conversions {
    ($($kind:ty),*) => {$(
        impl From<$kind> for Id {
            fn from(id: $kind) -> Self {
                Self(id.0)
            }
        }

        impl From<Id> for $kind {
            fn from(id: Id) -> Self {
                Self(id.0)
            }
        }
    )*};
}
id_conversions!(CollectionId, KeyId, CaptureId, ClusterId);

impl From<Id> for PersonId {
    fn from(id: Id) -> Self {
        Self(id.0)
    }
}

impl From<Id> for FaceId {
    fn from(id: Id) -> Self {
        Self(id.0)
    }
}

impl Type<Sqlite> for Id {
    fn type_info() -> <Sqlite as Database>::TypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &<Sqlite as Database>::TypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for Id {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(self.0.hyphenated().to_string(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Id {
    fn decode(value: <Sqlite as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(<&str as Decode<'r, Sqlite>>::decode(value)?.parse()?))
    }
}

impl Type<Postgres> for Id {
    fn type_info() -> <Postgres as Database>::TypeInfo {
        <Uuid as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &<Postgres as Database>::TypeInfo) -> bool {
        <Uuid as Type<Postgres>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Postgres> for Id {
    fn encode_by_ref(
        &self,
        buf: &mut <Postgres as Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        <Uuid as Encode<'q, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Id {
    fn decode(value: <Postgres as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(<Uuid as Decode<'r, Postgres>>::decode(value)?))
    }
}

/// A stored embedding: a BLOB of little-endian f32 in SQLite, `vector(512)` in PostgreSQL. Reading
/// one back checks that it is still a unit vector.
#[derive(Debug, Clone)]
pub(crate) struct Embedding(pub NormalizedEmbedding);

/// The SQLite form: 4 bytes per value, little-endian.
pub(crate) fn embedding_to_bytes(embedding: &NormalizedEmbedding) -> Vec<u8> {
    embedding
        .as_slice()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

pub(crate) fn embedding_from_bytes(bytes: &[u8]) -> Result<NormalizedEmbedding, BoxDynError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(format!("stored embedding has {} bytes", bytes.len()).into());
    }
    let values = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(NormalizedEmbedding::from_unit_vector(values)?)
}

impl Type<Sqlite> for Embedding {
    fn type_info() -> <Sqlite as Database>::TypeInfo {
        <Vec<u8> as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &<Sqlite as Database>::TypeInfo) -> bool {
        <Vec<u8> as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for Embedding {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        <Vec<u8> as Encode<'q, Sqlite>>::encode(embedding_to_bytes(&self.0), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Embedding {
    fn decode(value: <Sqlite as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(embedding_from_bytes(<&[u8] as Decode<
            'r,
            Sqlite,
        >>::decode(value)?)?))
    }
}

impl Type<Postgres> for Embedding {
    fn type_info() -> <Postgres as Database>::TypeInfo {
        <Vector as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &<Postgres as Database>::TypeInfo) -> bool {
        <Vector as Type<Postgres>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Postgres> for Embedding {
    fn encode_by_ref(
        &self,
        buf: &mut <Postgres as Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        <Vector as Encode<'q, Postgres>>::encode(Vector::from(self.0.as_slice().to_vec()), buf)
    }
}

impl<'r> Decode<'r, Postgres> for Embedding {
    fn decode(value: <Postgres as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        let vector = <Vector as Decode<'r, Postgres>>::decode(value)?;
        Ok(Self(NormalizedEmbedding::from_unit_vector(
            vector.to_vec(),
        )?))
    }
}
