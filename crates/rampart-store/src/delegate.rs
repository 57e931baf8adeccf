//! [`delegate_store!`](crate::delegate_store): a [`Store`](crate::Store) impl whose methods
//! pass through to a field, but for those written out. Written as a macro because the trait is
//! an `async_trait` (a blanket impl over an `inner()` accessor could not be partly overridden):
//! the macro gathers every method first and hands `async_trait` one finished impl.

/// Implements [`Store`](crate::Store) for `$ty`: the methods written in the block as given,
/// the ones named after `pass:` as calls to the same method of `self.$field`.
///
/// ```ignore
/// delegate_store! {
///     impl Store for Mirror => inner;
///     pass: [put, delete, delete_prefix, compare_and_set, grant_lease, keep_alive, revoke_lease, watch, revision];
///     async fn get(&self, key: &str) -> Result<Option<KeyValue>> { … }
///     async fn range(&self, prefix: &str) -> Result<Vec<KeyValue>> { … }
/// }
/// ```
#[macro_export]
macro_rules! delegate_store {
    (impl Store for $ty:ident => $field:ident; pass: [$($m:ident),* $(,)?]; $($item:tt)*) => {
        $crate::delegate_store!(@gather $ty, $field, [$($item)*], [$($m)*]);
    };
    (@gather $ty:ident, $field:ident, [$($acc:tt)*], []) => {
        #[$crate::delegate::async_trait]
        impl $crate::Store for $ty { $($acc)* }
    };
    (@gather $ty:ident, $field:ident, [$($acc:tt)*], [get $($rest:ident)*]) => {
        $crate::delegate_store!(@gather $ty, $field, [$($acc)*
            async fn get(&self, key: &str) -> $crate::Result<Option<$crate::KeyValue>> {
                self.$field.get(key).await
            }
        ], [$($rest)*]);
    };
    (@gather $ty:ident, $field:ident, [$($acc:tt)*], [range $($rest:ident)*]) => {
        $crate::delegate_store!(@gather $ty, $field, [$($acc)*
            async fn range(&self, prefix: &str) -> $crate::Result<Vec<$crate::KeyValue>> {
                self.$field.range(prefix).await
            }
        ], [$($rest)*]);
    };
    (@gather $ty:ident, $field:ident, [$($acc:tt)*], [put $($rest:ident)*]) => {
        $crate::delegate_store!(@gather $ty, $field, [$($acc)*
            async fn put(
                &self,
                key: &str,
                value: Vec<u8>,
                lease: Option<$crate::LeaseId>,
            ) -> $crate::Result<$crate::Revision> {
                self.$field.put(key, value, lease).await
            }
        ], [$($rest)*]);
    };
    (@gather $ty:ident, $field:ident, [$($acc:tt)*], [delete $($rest:ident)*]) => {
        $crate::delegate_store!(@gather $ty, $field, [$($acc)*
            async fn delete(&self, key: &str) -> $crate::Result<bool> {
                self.$field.delete(key).await
            }
        ], [$($rest)*]);
    };
    (@gather $ty:ident, $field:ident, [$($acc:tt)*], [delete_prefix $($rest:ident)*]) => {
        $crate::delegate_store!(@gather $ty, $field, [$($acc)*
            async fn delete_prefix(&self, prefix: &str) -> $crate::Result<u64> {
                self.$field.delete_prefix(prefix).await
            }
        ], [$($rest)*]);
    };
    (@gather $ty:ident, $field:ident, [$($acc:tt)*], [compare_and_set $($rest:ident)*]) => {
        $crate::delegate_store!(@gather $ty, $field, [$($acc)*
            async fn compare_and_set(
                &self,
                key: &str,
                expect: $crate::Expect,
                value: Option<Vec<u8>>,
                lease: Option<$crate::LeaseId>,
            ) -> $crate::Result<$crate::CasOutcome> {
                self.$field.compare_and_set(key, expect, value, lease).await
            }
        ], [$($rest)*]);
    };
    (@gather $ty:ident, $field:ident, [$($acc:tt)*], [grant_lease $($rest:ident)*]) => {
        $crate::delegate_store!(@gather $ty, $field, [$($acc)*
            async fn grant_lease(&self, ttl: std::time::Duration) -> $crate::Result<$crate::LeaseId> {
                self.$field.grant_lease(ttl).await
            }
        ], [$($rest)*]);
    };
    (@gather $ty:ident, $field:ident, [$($acc:tt)*], [keep_alive $($rest:ident)*]) => {
        $crate::delegate_store!(@gather $ty, $field, [$($acc)*
            async fn keep_alive(&self, lease: $crate::LeaseId) -> $crate::Result<std::time::Duration> {
                self.$field.keep_alive(lease).await
            }
        ], [$($rest)*]);
    };
    (@gather $ty:ident, $field:ident, [$($acc:tt)*], [revoke_lease $($rest:ident)*]) => {
        $crate::delegate_store!(@gather $ty, $field, [$($acc)*
            async fn revoke_lease(&self, lease: $crate::LeaseId) -> $crate::Result<()> {
                self.$field.revoke_lease(lease).await
            }
        ], [$($rest)*]);
    };
    (@gather $ty:ident, $field:ident, [$($acc:tt)*], [watch $($rest:ident)*]) => {
        $crate::delegate_store!(@gather $ty, $field, [$($acc)*
            async fn watch(&self, prefix: &str, from: Option<$crate::Revision>) -> $crate::Result<$crate::Watch> {
                self.$field.watch(prefix, from).await
            }
        ], [$($rest)*]);
    };
    (@gather $ty:ident, $field:ident, [$($acc:tt)*], [revision $($rest:ident)*]) => {
        $crate::delegate_store!(@gather $ty, $field, [$($acc)*
            async fn revision(&self) -> $crate::Result<$crate::Revision> {
                self.$field.revision().await
            }
        ], [$($rest)*]);
    };
}

#[doc(hidden)]
pub use async_trait::async_trait;
