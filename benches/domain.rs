//! Criterion benches of the domain's hot functions, grouped by operation: `decide` (a command
//! against a person's state), `apply` (an event onto it), building the ECS World, and rebuilding
//! persons from their chains in a sled store (one person, and everyone into the World).
//! (`personctl bench` measures the whole path, events/s, on a 100,000-event store.)
//!
//! It also prints the World's memory per person, counted by a counting global allocator that
//! exists only in this bench binary (never in `personctl`).

#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use personctl_domain::model::Skill;
use personctl_domain::{apply, decide, Command, Person, PersonId, PersonWorld, Persons};
use personctl_ledger::{Ledger, Signer, SledStore};

/// The system allocator, counting the bytes allocated minus freed.
struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call goes to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes the World holds per person: 1,000 persons of 100 events each, built on this thread
/// alone, counted by the allocator.
fn world_bytes_per_person() -> isize {
    let people: Vec<Person> = (0..1_000)
        .map(|_| person_after(PersonId::new_v7(), 100))
        .collect();
    let before = ALLOCATED.load(Ordering::Relaxed);
    let world = PersonWorld::from_persons(people.iter().cloned());
    let bytes = ALLOCATED.load(Ordering::Relaxed) - before;
    drop(world);
    bytes / people.len() as isize
}

/// Command `j` of a person's history (valid in order): register, then skills, renames and
/// email addresses in turn.
fn command(j: u64) -> Command {
    match j % 3 {
        _ if j == 0 => Command::Register {
            legal_name: "Ada Lovelace".into(),
        },
        0 => Command::AddSkill(Skill {
            name: format!("skill {j}"),
            level: (j % 5 + 1) as u8,
        }),
        1 => Command::Rename {
            legal_name: format!("Ada Lovelace ({j})"),
            reason: "bench".into(),
        },
        _ => Command::AddEmail {
            address: format!("ada.{j}@example.org"),
        },
    }
}

/// A person built by deciding and applying `n` commands in memory.
fn person_after(id: PersonId, n: u64) -> Person {
    let mut person: Option<Person> = None;
    for j in 0..n {
        for event in decide(id, person.as_ref(), &command(j)).expect("valid in order") {
            person = apply(person, &event);
        }
    }
    person.expect("registered")
}

fn benches(c: &mut Criterion) {
    println!(
        "World memory: {} bytes per person (all components and indexes; 100 events per person)",
        world_bytes_per_person()
    );
    let id = PersonId::new_v7();
    let person = person_after(id, 100);
    let rename = Command::Rename {
        legal_name: "Augusta Ada King".into(),
        reason: "marriage".into(),
    };
    let events = decide(id, Some(&person), &rename).unwrap();

    let mut g = c.benchmark_group("decide");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rename, 100-event person", |b| {
        b.iter(|| decide(id, Some(black_box(&person)), black_box(&rename)))
    });
    g.bench_function("register", |b| {
        b.iter(|| decide(id, None, black_box(&command(0))))
    });
    g.finish();

    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rename onto a 100-event person", |b| {
        b.iter_batched(
            || person.clone(),
            |p| apply(Some(p), black_box(&events[0])),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();

    let people: Vec<Person> = (0..1000)
        .map(|_| person_after(PersonId::new_v7(), 30))
        .collect();
    let mut g = c.benchmark_group("world");
    g.throughput(Throughput::Elements(people.len() as u64));
    g.bench_function("from 1,000 persons", |b| {
        b.iter(|| PersonWorld::from_persons(black_box(&people).iter().cloned()))
    });
    g.finish();

    // Chains in a sled store: 100 persons of 100 events, and one person of 10,000.
    let dir = tempfile::tempdir().unwrap();
    let persons = Persons::new(Ledger::new(
        SledStore::open(dir.path().join("store")).unwrap(),
    ));
    let signer = Signer::from_seed([7; 32]);
    let ids: Vec<PersonId> = (0..100).map(|_| PersonId::new_v7()).collect();
    for chunk in ids.chunks(10) {
        let commands: Vec<(PersonId, Command)> = chunk
            .iter()
            .flat_map(|id| (0..100).map(move |j| (*id, command(j))))
            .collect();
        persons.execute_batch(&signer, &commands).unwrap();
    }
    let long = PersonId::new_v7();
    for start in (0..10_000u64).step_by(1000) {
        let commands: Vec<(PersonId, Command)> = (start..start + 1000)
            .map(|j| match j {
                0 => (long, command(0)),
                j => (
                    long,
                    Command::Rename {
                        legal_name: format!("Long Chain {}", j % 2),
                        reason: String::new(),
                    },
                ),
            })
            .collect();
        persons.execute_batch(&signer, &commands).unwrap();
    }

    let mut g = c.benchmark_group("replay");
    g.sample_size(10);
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("one 10,000-event chain", |b| {
        b.iter(|| persons.replay(long, None).unwrap())
    });
    // Its serial part alone: the walk back along `prev` (read, CID, strict event decode).
    g.bench_function("walk back one 10,000-event chain", |b| {
        b.iter(|| {
            persons
                .ledger()
                .walk_back(&long.stream())
                .unwrap()
                .map(|e| e.unwrap().height())
                .sum::<u64>()
        })
    });
    g.throughput(Throughput::Elements(100 * 100 + 10_000));
    g.bench_function("every person into the World", |b| {
        b.iter(|| persons.replay_all().unwrap())
    });
    g.finish();
}

criterion_group!(domain, benches);
criterion_main!(domain);
