-- expect: require-concurrent-detach
-- hazards: blocks-reads
ALTER TABLE measurements DETACH PARTITION measurements_2019;
