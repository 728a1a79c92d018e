// Storage of bulk registration jobs, shared by both databases through `include!` like `shared.rs`.

use passerelle_domain::ports::BatchStore;

#[async_trait]
impl BatchStore for This {}
