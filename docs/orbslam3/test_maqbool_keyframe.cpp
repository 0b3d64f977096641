// Built and run by test/test_orbslam3_client.py against the venv's generated maqbool_ros headers.
#include <cstdio>
#include <string>
#include <vector>

#include "maqbool_keyframe.hpp"

using maqbool_orbslam3::ImageView;

static int failures = 0;
#define CHECK(cond) do {if (!(cond)) {std::printf("FAIL %s:%d %s\n", __FILE__, __LINE__, #cond); ++failures;}} while (0)

template<typename F>
static bool throws_naming(F f, const char * field)
{
  try {
    f();
  } catch (const std::exception & e) {
    return std::string(e.what()).find(field) != std::string::npos;
  }
  return false;
}

int main()
{
  // a 3x2 mono image inside a cv::Mat-like buffer with 2 padding bytes per row
  std::vector<std::uint8_t> buf = {1, 2, 3, 0, 0, 4, 5, 6, 0, 0};
  ImageView gray{buf.data(), 3, 2, 5, 1};
  auto kf = maqbool_orbslam3::make_keyframe(42, 1700000000.25, gray, "0");
  CHECK(kf.keyframe_id == 42 && kf.map_id == "0" && kf.robot_id.empty());
  CHECK(kf.header.stamp.sec == 1700000000 && kf.header.stamp.nanosec == 250000000u);
  CHECK(kf.image.encoding == "mono8" && kf.image.width == 3 && kf.image.height == 2 && kf.image.step == 3);
  CHECK((kf.image.data == std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6}));
  CHECK(kf.compressed_image.data.empty() && kf.depth.data.empty());
  auto carry = maqbool_orbslam3::to_stamp(1.9999999999);
  CHECK(carry.sec == 2 && carry.nanosec == 0u);

  CHECK(throws_naming([&] {maqbool_orbslam3::make_keyframe(-1, 1.0, gray);}, "keyframe_id"));
  CHECK(throws_naming([&] {maqbool_orbslam3::make_keyframe(1, 1.0, ImageView{});}, "image"));
  CHECK(throws_naming([&] {maqbool_orbslam3::make_keyframe(1, 1.0, ImageView{buf.data(), 3, 2, 2, 1});}, "step"));
  CHECK(throws_naming([&] {maqbool_orbslam3::make_keyframe(1, -1.0, gray);}, "timestamp"));

  auto request = maqbool_orbslam3::make_detect_request(kf, 3, {40, 41});
  CHECK(request.max_candidates == 3 && !request.add_to_database);
  CHECK((request.excluded_ids == std::vector<std::int64_t>{40, 41}) && request.keyframe.keyframe_id == 42);
  CHECK(throws_naming([&] {maqbool_orbslam3::make_detect_request(kf, 0, {});}, "max_candidates"));

  maqbool_ros::srv::Detect::Response response;
  response.success = true;
  maqbool_ros::msg::CandidateMatch a, b;
  a.keyframe_id = 7; a.robot_id = "orbslam3"; a.score = 0.9f; a.verified = true; a.map_id = "0";
  b.keyframe_id = 9; b.robot_id = "other"; b.score = 0.8f;
  response.result.candidates = {a, b};
  auto mine = maqbool_orbslam3::candidates_of(response, "orbslam3");
  CHECK(mine.size() == 1 && mine[0].keyframe_id == 7 && mine[0].verified && mine[0].map_id == "0");
  CHECK(maqbool_orbslam3::candidates_of(response).size() == 2);
  response.success = false;
  response.message = "detect: keyframe_id out of range";
  CHECK(throws_naming([&] {maqbool_orbslam3::candidates_of(response);}, "keyframe_id out of range"));

  auto remove = maqbool_orbslam3::make_remove_request({3, 4}, "orbslam3");
  CHECK(remove.keyframe_ids.size() == 2 && remove.robot_id == "orbslam3");
  std::printf(failures ? "FAILED %d\n" : "ALL OK\n", failures);
  return failures ? 1 : 0;
}
