// The API's JSON form (proto/json_mapping.h): a long response printed in chunks is the
// same text protobuf's printer gives for it whole; bad documents are named.
#include "proto/json_mapping.h"

#include <cmath>
#include <limits>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "trainer/v1/job_service.pb.h"

namespace trainerd {
namespace {

TEST(JsonMapping, ChunkedPrintingIsTheSameText) {
  trainer::v1::GetMetricsResponse response;
  for (int i = 0; i < 2500; ++i) {
    trainer::v1::MetricPoint* p = response.add_points();
    p->set_name(i % 3 == 0 ? "loss" : "eval_\"odd]name[");
    p->set_split("train");
    p->set_step(int64_t{1} << 40 | i);
    p->set_value(i == 7 ? std::numeric_limits<double>::quiet_NaN() : i == 8 ? -0.0 : 1.0 / (i + 1));
    p->set_attempt(i % 2);
  }
  response.set_stored_points(2600);
  const std::string whole = ToJson(response);
  for (int chunk : {1, 7, 1000, 2500, 5000}) EXPECT_EQ(ToJsonInChunks(response, "points", chunk), whole) << chunk;
  trainer::v1::GetMetricsResponse empty;
  EXPECT_EQ(ToJsonInChunks(empty, "points"), ToJson(empty));
  EXPECT_EQ(ToJsonInChunks(response, "no_such_field"), whole);
}

TEST(JsonMapping, BadDocumentsAreNamed) {
  trainer::v1::SubmitJobRequest request;
  absl::Status s = FromJson("{\"spec\": {\"bogus\": 1}}", &request, "request body");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("request body: "));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("bogus"));
  EXPECT_FALSE(FromJson("{", &request, "x").ok());
  EXPECT_TRUE(FromJson("{\"name\": \"n\", \"priority\": 3}", &request, "x").ok());
  EXPECT_EQ(request.priority(), 3);
}

}  // namespace
}  // namespace trainerd
