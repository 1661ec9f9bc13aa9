-- An identity at the identity provider (`<issuer>#<subject>`) signs up as
-- one user: the primary key decides before the user's events are appended,
-- and every provider token of a customer is resolved here to its user id.
CREATE TABLE user_identities
(
    identity    text NOT NULL PRIMARY KEY,
    user_id     text NOT NULL,
    reserved_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
