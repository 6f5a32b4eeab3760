-- One night of farm work (PgCluster::night): ~1% of animals and parts change, a few parts
-- are born, a few parts and one animal go. @SEED@ picks the rows, so nights differ.
BEGIN;
CREATE OR REPLACE FUNCTION pg_temp.h(i bigint, k bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT ((i * 7919 + k * 104729 + @SEED@) % 1000003)
                 * ((i * 7919 + k * 104729 + @SEED@) % 1000003) % 1000003 $$;
-- The night's clock: later than every loaded row, and the same for the same seed.
CREATE OR REPLACE FUNCTION pg_temp.t(i bigint) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT timestamptz '2025-01-01 00:00:00+00' + @SEED@ * interval '1 hour'
                 + i * interval '1 millisecond' $$;

UPDATE animals
SET estat = (ARRAY['actiu', 'venut', 'mort'])[1 + pg_temp.h(id, 20) % 3],
    explotacio = CASE WHEN pg_temp.h(id, 21) % 4 = 0 THEN 'Mas Imperi' ELSE explotacio END,
    updated_at = pg_temp.t(id)
WHERE pg_temp.h(id, 22) % 100 = 0;

UPDATE parts
SET estat = (ARRAY['viu', 'mort'])[1 + pg_temp.h(id, 23) % 2],
    observacions = coalesce(observacions || ' ', '') || 'Revisat pel veterinari.',
    updated_at = pg_temp.t(id)
WHERE pg_temp.h(id, 24) % 100 = 0;

INSERT INTO parts (animal_id, data, sexe, estat, observacions, updated_at)
SELECT id, date '2025-01-01' + (@SEED@ % 3000)::int, 'F', 'viu', 'Nascut aquesta nit: tot bé',
       pg_temp.t(id)
FROM animals ORDER BY pg_temp.h(id, 25), id LIMIT 5;

DELETE FROM parts WHERE id IN (SELECT id FROM parts ORDER BY pg_temp.h(id, 26), id LIMIT 3);
-- An animal goes with its parts (cascade); its offspring lose the parent link (set null).
DELETE FROM animals WHERE id IN (SELECT id FROM animals ORDER BY pg_temp.h(id, 27), id LIMIT 1);
COMMIT;
