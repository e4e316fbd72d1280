DROP TABLE call_turns;
DROP TABLE call_events;
DROP TABLE calls;
DROP TABLE dnc_numbers;
DROP TABLE contacts;
DROP TABLE campaigns;
DROP TABLE api_keys;
DROP TABLE tenants;
