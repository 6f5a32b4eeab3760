-- The Masclet Imperi farm schema, filled by PgCluster::load_masclet_imperi. Placeholders
-- (@N@ animals, @SEED@, @APP_PW@, @RO_PW@) are substituted before psql runs it. Rows come
-- from generate_series and a seeded hash, so the same seed gives the same rows, fast.
BEGIN;
-- A cheap deterministic mix of a row number and a column tag (session-local, inlined).
CREATE OR REPLACE FUNCTION pg_temp.h(i bigint, k bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT ((i * 7919 + k * 104729 + @SEED@) % 1000003)
                 * ((i * 7919 + k * 104729 + @SEED@) % 1000003) % 1000003 $$;

CREATE TABLE users (
    id serial PRIMARY KEY,
    username text NOT NULL UNIQUE,
    email text NOT NULL,
    role text NOT NULL,
    is_active boolean NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL
);
CREATE TABLE animals (
    id serial PRIMARY KEY,
    nom text NOT NULL,
    explotacio text NOT NULL,
    genere char(1) NOT NULL CHECK (genere IN ('M', 'F')),
    estat text NOT NULL,
    pare_id integer,
    mare_id integer,
    data_naixement date,
    updated_at timestamptz NOT NULL
);
CREATE TABLE parts (
    id serial PRIMARY KEY,
    animal_id integer NOT NULL,
    data date NOT NULL,
    sexe char(1),
    estat text NOT NULL,
    observacions text,
    updated_at timestamptz NOT NULL
);

INSERT INTO users (username, email, role, is_active, updated_at)
SELECT u, translate(u, 'àèéíòóúç', 'aeeiooou') || '@masclet-imperi.cat',
       (ARRAY['administrador', 'gerent', 'editor', 'consulta'])[1 + n % 4], n % 5 <> 4,
       timestamptz '2024-01-01 00:00:00+00' + pg_temp.h(n, 1) * interval '1 second'
FROM unnest(ARRAY['admin', 'gerent', 'núria.vet', 'pagès.jordi', 'montse', 'consulta',
                  'joan.ferrer', 'mercè']) WITH ORDINALITY AS t(u, n);

INSERT INTO animals (id, nom, explotacio, genere, estat, pare_id, mare_id, data_naixement,
                     updated_at)
SELECT i,
       (ARRAY['Margarida', 'Ñandú', 'Blanqueta', 'Roser·la', 'Estrella', 'Bruna', 'Pinta',
              'Mòra', 'Garrí', 'Lluna', 'Castanya', 'Àngela'])[1 + pg_temp.h(i, 2) % 12],
       (ARRAY['Mas Pujol', 'Can Ferrer', 'La Vall d''Àneu', 'Cal Tòfol',
              'Mas Imperi'])[1 + pg_temp.h(i, 3) % 5],
       CASE WHEN pg_temp.h(i, 4) % 4 = 0 THEN 'M' ELSE 'F' END,
       (ARRAY['actiu', 'actiu', 'actiu', 'venut', 'mort'])[1 + pg_temp.h(i, 5) % 5],
       -- Parents are earlier animals (a family tree has no cycles).
       CASE WHEN i > 20 AND pg_temp.h(i, 6) % 3 > 0 THEN 1 + pg_temp.h(i, 7) % (i - 1) END,
       CASE WHEN i > 20 AND pg_temp.h(i, 8) % 3 > 0 THEN 1 + pg_temp.h(i, 9) % (i - 1) END,
       date '2008-01-01' + (pg_temp.h(i, 10) % 6000)::int,
       timestamptz '2024-01-01 00:00:00+00' + pg_temp.h(i, 11) * interval '1 second'
FROM generate_series(1, @N@) AS i;

INSERT INTO parts (id, animal_id, data, sexe, estat, observacions, updated_at)
SELECT p, 1 + pg_temp.h(p, 12) % @N@,
       date '2015-01-01' + (pg_temp.h(p, 13) % 3500)::int,
       (ARRAY['M', 'F', NULL])[1 + pg_temp.h(p, 14) % 3],
       (ARRAY['viu', 'viu', 'viu', 'mort', 'avortament'])[1 + pg_temp.h(p, 15) % 5],
       (ARRAY['Part sense complicacions', 'Vedell dèbil, s''ha recuperat',
              'Mare amb febre: tractament amb antibiòtic', 'Bessons! Tots dos vius',
              'Part assistit pel veterinari (cesària)', NULL])[1 + pg_temp.h(p, 16) % 6],
       timestamptz '2024-01-01 00:00:00+00' + pg_temp.h(p, 17) * interval '1 second'
FROM generate_series(1, @N@) AS p;

-- Ids were given explicitly: move the sequences past them for later inserts.
SELECT setval('animals_id_seq', coalesce(max(id), 0) + 1, false) FROM animals;
SELECT setval('parts_id_seq', coalesce(max(id), 0) + 1, false) FROM parts;

-- Keys after the rows: one validating join instead of a trigger query per row.
ALTER TABLE animals
    ADD FOREIGN KEY (pare_id) REFERENCES animals (id) ON DELETE SET NULL,
    ADD FOREIGN KEY (mare_id) REFERENCES animals (id) ON DELETE SET NULL;
ALTER TABLE parts ADD FOREIGN KEY (animal_id) REFERENCES animals (id) ON DELETE CASCADE;
CREATE INDEX animals_explotacio_idx ON animals (explotacio);
CREATE INDEX parts_animal_id_idx ON parts (animal_id);

-- Roles are cluster-wide: a second database loaded into the same cluster reuses them.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'masclet_app') THEN
        CREATE ROLE masclet_app LOGIN PASSWORD @APP_PW@;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'masclet_ro') THEN
        CREATE ROLE masclet_ro LOGIN PASSWORD @RO_PW@;
    END IF;
END
$$;
GRANT SELECT, INSERT, UPDATE ON users, animals, parts TO masclet_app;
GRANT USAGE ON SEQUENCE users_id_seq, animals_id_seq, parts_id_seq TO masclet_app;
GRANT SELECT ON users, animals, parts TO masclet_ro;
COMMIT;
ANALYZE users, animals, parts;
