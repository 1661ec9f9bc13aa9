//! The SDL frontends code against is checked in; it must match the code.
//! Regenerate after a schema change with
//! `cargo run -- graphql-schema > query-api/schema.graphql`.

#[test]
fn schema_matches_the_checked_in_sdl() {
    let checked_in = include_str!("../schema.graphql");
    assert!(
        query_api::sdl().trim() == checked_in.trim(),
        "query-api/schema.graphql is out of date: run `cargo run -- graphql-schema > query-api/schema.graphql`"
    );
}

#[test]
fn the_contract_fields_exist() {
    let sdl = query_api::sdl();
    for needle in [
        "customer(id: ID!): Customer!",
        "orders(first: Int, after: String, status: OrderStatus): OrderConnection!",
        "lifetimeSpend: [Money!]!",
        "lineTotal: Money!",
        "authorizedMinor: Int!",
        "revenue(from: NaiveDate!, to: NaiveDate!, granularity: Granularity!, currency: String!): [RevenueBucket!]!",
        "topProducts(from: NaiveDate!, to: NaiveDate!, by: ProductRanking!, limit: Int! = 10): [ProductSales!]!",
        "ordersByStatus: [OrdersByStatus!]!",
    ] {
        assert!(sdl.contains(needle), "the schema lost `{needle}`");
    }
}
