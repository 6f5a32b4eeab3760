//! Deterministic workloads shaped like masclet_imperi's nightly `pg_dump`.
//!
//! [`DumpModel`] holds the rows of `animals`, `parts` and `users` and renders them as a
//! plain-format dump (COPY blocks, rows in heap order). [`DumpModel::night`] applies one
//! night of farm activity: about 1% of the dump's bytes change; most updates hit recent
//! animals, a tenth land anywhere; an updated row either stays in place (a HOT update) or
//! moves to the end of its table (a new heap tuple), as PostgreSQL's physical order does;
//! old animals are deleted with their parts; new animals and parts are appended.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NAMES: [&str; 12] = [
    "Blanca", "Estrella", "Mora", "Rosa", "Negra", "Bruna", "Linda", "Perla", "Xula", "Nina",
    "Lola", "Fina",
];
const STATES: [&str; 3] = ["OK", "DEF", "VEN"];

#[derive(Clone)]
struct Animal {
    id: u64,
    name: &'static str,
    sex: char,
    state: &'static str,
    nursing: u8,
    mother: u64,
    pen: u16,
    code: u32,
    born: (u16, u8, u8),
    updated: u32,
}

#[derive(Clone)]
struct Part {
    id: u64,
    animal: u64,
    date: (u16, u8, u8),
    sex: char,
    state: &'static str,
    number: u32,
}

/// A synthetic masclet_imperi database.
pub struct DumpModel {
    animals: Vec<Animal>,
    parts: Vec<Part>,
    next_animal: u64,
    next_part: u64,
    night: u32,
    rng: StdRng,
}

fn date(rng: &mut StdRng) -> (u16, u8, u8) {
    (
        rng.gen_range(2005..2026),
        rng.gen_range(1..13),
        rng.gen_range(1..29),
    )
}

impl DumpModel {
    /// A database of `animals` animals (about 1.3 parts each), reproducible from `seed`.
    pub fn new(animals: u64, seed: u64) -> Self {
        let mut m = Self {
            animals: Vec::new(),
            parts: Vec::new(),
            next_animal: 1,
            next_part: 1,
            night: 0,
            rng: StdRng::seed_from_u64(seed),
        };
        for _ in 0..animals {
            m.add_animal();
        }
        m
    }

    /// About how many bytes of dump `animals` animals make.
    pub fn bytes_per_animal() -> u64 {
        185
    }

    fn add_animal(&mut self) {
        let rng = &mut self.rng;
        let id = self.next_animal;
        self.next_animal += 1;
        let a = Animal {
            id,
            name: NAMES[rng.gen_range(0..NAMES.len())],
            sex: if rng.gen_bool(0.8) { 'F' } else { 'M' },
            state: STATES[rng.gen_range(0..3)],
            nursing: rng.gen_range(0..3),
            mother: if id > 10 { rng.gen_range(1..id) } else { 0 },
            pen: rng.gen_range(1..400),
            code: rng.gen_range(0..99_999_999),
            born: date(rng),
            updated: 0,
        };
        let nparts = if a.sex == 'F' { rng.gen_range(0..4) } else { 0 };
        self.animals.push(a);
        for _ in 0..nparts {
            self.add_part(id);
        }
    }

    fn add_part(&mut self, animal: u64) {
        let rng = &mut self.rng;
        let p = Part {
            id: self.next_part,
            animal,
            date: date(rng),
            sex: if rng.gen_bool(0.5) { 'F' } else { 'M' },
            state: STATES[rng.gen_range(0..3)],
            number: rng.gen_range(1..9999),
        };
        self.next_part += 1;
        self.parts.push(p);
    }

    /// Apply one night of changes touching about `fraction` of the rows.
    pub fn night(&mut self, fraction: f64) {
        self.night += 1;
        let n = self.animals.len();
        let updates = ((n as f64) * fraction * 0.8) as usize;
        for _ in 0..updates {
            let i = if self.rng.gen_bool(0.9) {
                self.rng.gen_range(n - n / 10..n)
            } else {
                self.rng.gen_range(0..n)
            };
            let mut a = self.animals[i].clone();
            a.state = STATES[self.rng.gen_range(0..3)];
            a.pen = self.rng.gen_range(1..400);
            a.nursing = self.rng.gen_range(0..3);
            a.updated = self.night;
            if self.rng.gen_bool(0.5) {
                self.animals[i] = a; // HOT update: same place in the heap
            } else {
                self.animals.remove(i); // new tuple at the end of the heap
                self.animals.push(a);
            }
        }
        // Deletes of old animals cascade to their parts.
        let deletes = updates / 10;
        let mut gone = std::collections::HashSet::new();
        for _ in 0..deletes {
            let i = self.rng.gen_range(0..n / 5);
            if i < self.animals.len() {
                gone.insert(self.animals.remove(i).id);
            }
        }
        self.parts.retain(|p| !gone.contains(&p.animal));
        for _ in 0..deletes * 2 {
            self.add_animal();
        }
        let np = self.parts.len();
        for _ in 0..updates / 4 {
            let i = self.rng.gen_range(np - np / 10..np);
            self.parts[i].state = STATES[self.rng.gen_range(0..3)];
        }
    }

    /// Render as a plain-format `pg_dump`.
    pub fn render(&self) -> Vec<u8> {
        use std::fmt::Write;
        let mut s = String::with_capacity(self.animals.len() * 260);
        s.push_str("--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\nSET client_encoding = 'UTF8';\n\n");
        s.push_str("CREATE TABLE public.animals (id integer NOT NULL, nom character varying(100), genere character(1), estat character varying(3), alletant integer, mare_id integer, quadra integer, cod character varying(20), num_serie character varying(20), dob date, explotacio character varying(40), updated_at timestamp);\n\n");
        s.push_str("COPY public.animals (id, nom, genere, estat, alletant, mare_id, quadra, cod, num_serie, dob, explotacio, updated_at) FROM stdin;\n");
        for a in &self.animals {
            let _ = writeln!(
                s,
                "{}\t{} {}\t{}\t{}\t{}\t{}\t{}\tES{:08}\tES{:012}\t{:04}-{:02}-{:02}\tMasclet Imperi {}\t2026-01-{:02} 07:45:{:02}",
                a.id,
                a.name,
                a.id % 97,
                a.sex,
                a.state,
                a.nursing,
                a.mother,
                a.pen,
                a.code,
                u64::from(a.code) * 7919,
                a.born.0,
                a.born.1,
                a.born.2,
                a.id % 7,
                (a.updated % 28) + 1,
                a.updated % 60
            );
        }
        s.push_str("\\.\n\n");
        s.push_str("COPY public.parts (id, animal_id, part, genere_fill, estat_fill, numero_part, observacions) FROM stdin;\n");
        for p in &self.parts {
            let _ = writeln!(
                s,
                "{}\t{}\t{:04}-{:02}-{:02}\t{}\t{}\t{}\tPart registrat a la quadra {}",
                p.id,
                p.animal,
                p.date.0,
                p.date.1,
                p.date.2,
                p.sex,
                p.state,
                p.number,
                p.number % 400
            );
        }
        s.push_str("\\.\n\nCOPY public.users (id, username, email, role, is_active) FROM stdin;\n");
        for u in 1..=20 {
            let _ = writeln!(s, "{u}\tuser{u}\tuser{u}@masclet.example\tgerente\tt");
        }
        s.push_str("\\.\n\n--\n-- PostgreSQL database dump complete\n--\n");
        s.into_bytes()
    }
}
