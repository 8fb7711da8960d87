//! A checked step: one id, one kind.
//!
//! A `[[steps]]` table may be written with several kinds or none ([`StepTable`]); checking
//! reports that and keeps only steps of exactly one kind, so everything after the check matches
//! on [`StepKind`] and the compiler lists every place a new kind must be handled.

use std::collections::BTreeMap;

use toml::Spanned;

use crate::model::{
    Branch, ConditionStep, ForEachStep, ReadStep, RunAfter, StepTable, TransformStep, WriteStep,
};
use crate::names::{Interval, StepId};

/// One step of a checked flow.
#[derive(Debug)]
pub struct Step {
    pub id: Spanned<StepId>,
    pub kind: StepKind,
    /// A transform's configuration (checking refuses it on other kinds).
    pub config: Option<Spanned<toml::Table>>,
    /// Run only after these steps ended so; read steps only.
    pub run_after: BTreeMap<Spanned<StepId>, Spanned<RunAfter>>,
    /// How long one call of the step may take, retries included.
    pub timeout: Option<Spanned<Interval>>,
}

/// What a step does.
#[derive(Debug)]
pub enum StepKind {
    /// Reads a connector's stream or a dataset, page by page.
    Read(Spanned<ReadStep>),
    /// Runs a transform plugin over its input's records.
    Transform(Spanned<TransformStep>),
    /// Writes its input's records to a connector's stream or a dataset.
    Write(Spanned<WriteStep>),
    /// Routes its input's records by a CEL condition.
    Condition(Spanned<ConditionStep>),
    /// Reads a stream once per input record.
    ForEach(Spanned<ForEachStep>),
}

impl StepKind {
    /// The kind's key in a flow file.
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Read(_) => "read",
            StepKind::Transform(_) => "transform",
            StepKind::Write(_) => "write",
            StepKind::Condition(_) => "condition",
            StepKind::ForEach(_) => "for_each",
        }
    }

    /// The step whose records this one takes, for every kind but `read`.
    pub fn input(&self) -> Option<&Spanned<StepId>> {
        match self {
            StepKind::Read(_) => None,
            StepKind::Transform(t) => Some(&t.get_ref().input),
            StepKind::Write(w) => Some(&w.get_ref().input),
            StepKind::Condition(c) => Some(&c.get_ref().input),
            StepKind::ForEach(f) => Some(&f.get_ref().input),
        }
    }

    /// Which output of its input this step takes, when it says.
    pub fn branch(&self) -> Option<&Spanned<Branch>> {
        match self {
            StepKind::Read(_) => None,
            StepKind::Transform(t) => t.get_ref().branch.as_ref(),
            StepKind::Write(w) => w.get_ref().branch.as_ref(),
            StepKind::Condition(c) => c.get_ref().branch.as_ref(),
            StepKind::ForEach(f) => f.get_ref().branch.as_ref(),
        }
    }

    /// A transform's lookup input.
    pub fn lookup(&self) -> Option<&Spanned<StepId>> {
        match self {
            StepKind::Transform(t) => t.get_ref().lookup.as_ref(),
            _ => None,
        }
    }

    /// Whether the step hands records downstream on its default branch (a write hands on only
    /// what it wrote, on its `written` branch).
    pub fn produces_records(&self) -> bool {
        !matches!(self, StepKind::Write(_))
    }
}

impl Step {
    /// The step whose records this one takes, for every kind but `read`.
    pub fn input(&self) -> Option<&Spanned<StepId>> {
        self.kind.input()
    }

    /// Which output of its input this step takes: `then` unless it says.
    pub fn branch(&self) -> Branch {
        self.kind
            .branch()
            .map_or(Branch::default(), |b| *b.get_ref())
    }

    /// Whether the step reads `id` on `branch`.
    pub fn reads(&self, id: &StepId, branch: Branch) -> bool {
        self.input().is_some_and(|i| i.get_ref() == id) && self.branch() == branch
    }
}

impl StepTable {
    /// The step, when the table gives exactly one kind; otherwise the kinds it gives.
    pub(crate) fn into_step(self) -> Result<Step, (Spanned<StepId>, Vec<&'static str>)> {
        let StepTable {
            id,
            read,
            transform,
            write,
            condition,
            for_each,
            config,
            run_after,
            timeout,
        } = self;
        let mut kinds: Vec<StepKind> = Vec::with_capacity(1);
        kinds.extend(read.map(StepKind::Read));
        kinds.extend(transform.map(StepKind::Transform));
        kinds.extend(write.map(StepKind::Write));
        kinds.extend(condition.map(StepKind::Condition));
        kinds.extend(for_each.map(StepKind::ForEach));
        if kinds.len() != 1 {
            return Err((id, kinds.iter().map(StepKind::name).collect()));
        }
        Ok(Step {
            id,
            kind: kinds.remove(0),
            config,
            run_after,
            timeout,
        })
    }
}
