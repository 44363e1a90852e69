// Checks of a job's input files that need only their first bytes: what the worker would
// find wrong when it opens them, found before the job is queued. Part of
// FindSpecProblems (with check_files), so trainerd's SubmitJob, `trainer-cli validate`
// and the worker's start run exactly these checks.
//
// Read: the data files' first 64 KiB (IDX magic numbers and counts; a CSV/TSV header
// and its first rows; a JSONL file's first row), an hf folder's config.json, which
// weights and tokenizer files it has, a tokenizer.model's pad id, and a LoRA adapter's
// adapter_config.json. Files are opened
// confined (ReadRoots), and an answer never quotes what a file holds, only where
// (row, column) and what is wrong.
#ifndef TRAINERD_SPEC_INPUT_CHECKS_H_
#define TRAINERD_SPEC_INPUT_CHECKS_H_

#include "spec/spec_checker.h"
#include "spec/spec_policy.h"
#include "trainer/v1/job_spec.pb.h"

namespace trainerd {

// Adds a problem for each input file of `spec` (defaults applied) that the worker would
// refuse. Fields the checker already refused (paths outside `roots`) are not opened.
// An hf job's memory estimate (from its config.json and its LoRA adapter) is made here,
// where the folder is read (Checker::Memory).
void CheckInputFiles(const trainer::v1::JobSpec& spec, const ReadRoots& roots, Checker* c);

}  // namespace trainerd

#endif  // TRAINERD_SPEC_INPUT_CHECKS_H_
