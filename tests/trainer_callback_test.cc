// The built-in callbacks on their own (no model, no LibTorch).
#include "worker/trainer/trainer_callback.h"

#include <gtest/gtest.h>

namespace trainerd {
namespace {

// Patience counts evaluations during training; the final evaluation after train_end
// neither counts nor stops anything (before, it logged a stray "has not improved" line
// after the run had ended).
TEST(EarlyStopping, CountsOnlyEvaluationsDuringTraining) {
  EarlyStoppingCallback callback(/*patience=*/2, /*threshold=*/0);
  TrainingArguments args;
  args.set_metric_for_best_model("loss");
  args.set_greater_is_better(false);
  TrainerState state;
  state.best_metric = 0.5;
  TrainerControl control;
  const Metrics worse = {{"eval_loss", 0.9}};
  callback.on_train_begin(args, state, control);
  callback.on_evaluate(args, state, control, worse);
  EXPECT_EQ(callback.patience_counter(), 1);
  EXPECT_FALSE(control.should_training_stop);
  callback.on_train_end(args, state, control);
  callback.on_evaluate(args, state, control, worse);  // the final do_eval
  EXPECT_EQ(callback.patience_counter(), 1);
  EXPECT_FALSE(control.should_training_stop);
  callback.on_train_begin(args, state, control);  // a resumed run counts on
  callback.on_evaluate(args, state, control, worse);
  EXPECT_EQ(callback.patience_counter(), 2);
  EXPECT_TRUE(control.should_training_stop);
}

}  // namespace
}  // namespace trainerd
