// maqbool_ros <-> ORB-SLAM3: the message side, without rclcpp or OpenCV (docs/orbslam3.md).
//
// Builds the maqbool_ros/Keyframe of one ORB-SLAM3 KeyFrame, the ~/detect request for it, and
// reads the candidates out of the answer. Depends only on the C++ types generated for
// maqbool_ros (rosidl), so it compiles (and test/test_orbslam3_client.py tests it) without a ROS
// client library. maqbool_detect_client.hpp adds the rclcpp publisher and service clients.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "maqbool_ros/msg/keyframe.hpp"
#include "maqbool_ros/srv/detect.hpp"
#include "maqbool_ros/srv/remove_keyframes.hpp"

namespace maqbool_orbslam3
{

// A view of an 8-bit image in memory (an ORB-SLAM3 cv::Mat: data, cols, rows, step[0], channels()).
struct ImageView
{
  const std::uint8_t * data = nullptr;
  int width = 0;
  int height = 0;
  std::size_t step = 0;  // bytes per row (>= width * channels)
  int channels = 1;      // 1: mono8 (ORB-SLAM3's mImGray), 3: bgr8 (OpenCV's colour order)
};

// One candidate of a ~/detect answer, best first.
struct Candidate
{
  std::int64_t keyframe_id;  // KeyFrame::mnId of the candidate
  std::string map_id;        // the Atlas map id it was published with ("" when unknown)
  float score;               // [0, 1], higher is better
  bool verified;             // passed the node's geometric verification
};

inline builtin_interfaces::msg::Time to_stamp(double seconds)
{
  if (!std::isfinite(seconds) || seconds < 0.0) {
    throw std::invalid_argument("timestamp: must be a finite, non-negative number of seconds");
  }
  builtin_interfaces::msg::Time t;
  double whole = std::floor(seconds);
  auto nanosec = static_cast<std::uint32_t>(std::llround((seconds - whole) * 1e9));
  if (nanosec >= 1000000000u) {  // rounding carried into the next second
    whole += 1.0;
    nanosec -= 1000000000u;
  }
  t.sec = static_cast<std::int32_t>(whole);
  t.nanosec = nanosec;
  return t;
}

// The Keyframe message of KeyFrame mnId: its timestamp (KeyFrame::mTimeStamp, seconds), its image,
// the Atlas map id (std::to_string(pKF->GetMap()->GetId())) and the camera frame. robot_id may stay
// empty (the node's robot_id parameter). Throws std::invalid_argument naming the bad field.
inline maqbool_ros::msg::Keyframe make_keyframe(
  std::int64_t mnId, double timestamp, const ImageView & image, const std::string & map_id = "",
  const std::string & robot_id = "", const std::string & frame_id = "camera")
{
  if (mnId < 0) {
    throw std::invalid_argument("keyframe_id: KeyFrame::mnId must not be negative");
  }
  if (image.data == nullptr || image.width <= 0 || image.height <= 0) {
    throw std::invalid_argument("image: empty (keep the keyframe's image until it is published)");
  }
  if (image.channels != 1 && image.channels != 3) {
    throw std::invalid_argument("image: 1 (mono8) or 3 (bgr8) channels expected");
  }
  const std::size_t row = static_cast<std::size_t>(image.width) * image.channels;
  if (image.step < row) {
    throw std::invalid_argument("image: step is smaller than width * channels");
  }
  maqbool_ros::msg::Keyframe kf;
  kf.header.stamp = to_stamp(timestamp);
  kf.header.frame_id = frame_id;
  kf.keyframe_id = mnId;
  kf.robot_id = robot_id;
  kf.map_id = map_id;
  kf.image.header = kf.header;
  kf.image.width = static_cast<std::uint32_t>(image.width);
  kf.image.height = static_cast<std::uint32_t>(image.height);
  kf.image.encoding = image.channels == 1 ? "mono8" : "bgr8";
  kf.image.step = static_cast<std::uint32_t>(row);
  kf.image.data.resize(row * image.height);
  for (int y = 0; y < image.height; ++y) {  // drop the row padding a cv::Mat ROI may have
    std::memcpy(&kf.image.data[y * row], image.data + y * image.step, row);
  }
  return kf;
}

// The ~/detect request of LoopClosing: query only (LocalMapping already published the keyframe),
// at most max_candidates (ORB-SLAM3's DetectNBestCandidates asks for 3), never the covisible
// keyframes (excluded_ids = their mnId).
inline maqbool_ros::srv::Detect::Request make_detect_request(
  const maqbool_ros::msg::Keyframe & keyframe, std::uint32_t max_candidates,
  const std::vector<std::int64_t> & excluded_ids, bool add_to_database = false)
{
  if (max_candidates == 0) {
    throw std::invalid_argument("max_candidates: 0 would mean the node's database.top_k; ask for 1..3");
  }
  maqbool_ros::srv::Detect::Request request;
  request.keyframe = keyframe;
  request.max_candidates = max_candidates;
  request.excluded_ids = excluded_ids;
  request.add_to_database = add_to_database;
  return request;
}

// The candidates of a ~/detect answer that belong to robot_id ("" = any), best first.
// Throws std::runtime_error with the node's message when it refused the request.
inline std::vector<Candidate> candidates_of(
  const maqbool_ros::srv::Detect::Response & response, const std::string & robot_id = "")
{
  if (!response.success) {
    throw std::runtime_error("maqbool ~/detect refused the request: " + response.message);
  }
  std::vector<Candidate> out;
  for (const auto & c : response.result.candidates) {
    if (robot_id.empty() || c.robot_id == robot_id) {
      out.push_back(Candidate{c.keyframe_id, c.map_id, c.score, c.verified});
    }
  }
  return out;
}

inline maqbool_ros::srv::RemoveKeyframes::Request make_remove_request(
  const std::vector<std::int64_t> & ids, const std::string & robot_id = "")
{
  maqbool_ros::srv::RemoveKeyframes::Request request;
  request.keyframe_ids = ids;
  request.robot_id = robot_id;
  return request;
}

}  // namespace maqbool_orbslam3
