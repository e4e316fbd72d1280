ALTER TABLE campaigns DROP CONSTRAINT campaigns_transfer_check;
ALTER TABLE campaigns DROP COLUMN transfer_announce;
ALTER TABLE campaigns DROP COLUMN transfer_number;
