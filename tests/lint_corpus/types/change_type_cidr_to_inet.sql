-- expect: none
ALTER TABLE firewall_rules ADD COLUMN source cidr;
ALTER TABLE firewall_rules ALTER COLUMN source TYPE inet;
