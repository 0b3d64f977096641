// maqbool_ros client for an ORB-SLAM3 ROS 2 wrapper (docs/orbslam3.md): publishes keyframes,
// asks ~/detect, reports culled keyframes to ~/remove_keyframes. rclcpp part; the message
// building is in maqbool_keyframe.hpp. Not compiled in this repository's CI (the PyPI ROS wheels
// ship no rclcpp): build it in the wrapper's colcon workspace (CMakeLists.snippet.cmake).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rclcpp/rclcpp.hpp"

#include "maqbool_keyframe.hpp"

namespace maqbool_orbslam3
{

class MaqboolClient
{
public:
  // node: the wrapper's node; it must be spun by another thread (e.g. the wrapper's executor in
  // main()), as detect() blocks the calling thread (LoopClosing) on the answer.
  // maqbool_node: the loop-closure node's name relative to node's namespace (default launch:
  // "maqbool_loop_closure"), so the services are <maqbool_node>/detect and /remove_keyframes.
  explicit MaqboolClient(
    rclcpp::Node::SharedPtr node, const std::string & maqbool_node = "maqbool_loop_closure",
    const std::string & keyframe_topic = "keyframes", const std::string & robot_id = "")
  : node_(std::move(node)), robot_id_(robot_id)
  {
    // reliable, keep last 1000: a keyframe must not be lost (the node subscribes the same way)
    publisher_ = node_->create_publisher<maqbool_ros::msg::Keyframe>(
      keyframe_topic, rclcpp::QoS(rclcpp::KeepLast(1000)).reliable());
    detect_ = node_->create_client<maqbool_ros::srv::Detect>(maqbool_node + "/detect");
    remove_ = node_->create_client<maqbool_ros::srv::RemoveKeyframes>(maqbool_node + "/remove_keyframes");
  }

  // LocalMapping: one new keyframe (stored by the node; its candidates also go out on the node's
  // candidates topic, which this client does not need).
  void publish(const maqbool_ros::msg::Keyframe & keyframe) {publisher_->publish(keyframe);}

  // LoopClosing: the candidates for keyframe (best first; only this robot's), or std::nullopt when
  // the node is not there, did not answer within timeout, or refused the request (logged). The
  // caller then falls back to ORB-SLAM3's own DBoW2 search.
  std::optional<std::vector<Candidate>> detect(
    const maqbool_ros::msg::Keyframe & keyframe, std::uint32_t max_candidates,
    const std::vector<std::int64_t> & excluded_ids,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(1500))
  {
    if (!detect_->service_is_ready()) {
      RCLCPP_WARN_THROTTLE(node_->get_logger(), *node_->get_clock(), 10000, "maqbool ~/detect not available");
      return std::nullopt;
    }
    auto request = std::make_shared<maqbool_ros::srv::Detect::Request>(
      make_detect_request(keyframe, max_candidates, excluded_ids, false));
    auto future = detect_->async_send_request(request);
    if (future.wait_for(timeout) != std::future_status::ready) {
      detect_->remove_pending_request(future);
      RCLCPP_WARN(node_->get_logger(), "maqbool ~/detect: no answer within %lld ms",
        static_cast<long long>(timeout.count()));
      return std::nullopt;
    }
    try {
      return candidates_of(*future.get(), robot_id_);
    } catch (const std::exception & e) {
      RCLCPP_WARN(node_->get_logger(), "%s", e.what());
      return std::nullopt;
    }
  }

  // KeyFrame::SetBadFlag (culled or merged keyframes): fire and forget; the node persists it.
  void remove(const std::vector<std::int64_t> & ids)
  {
    if (ids.empty() || !remove_->service_is_ready()) {
      return;
    }
    remove_->async_send_request(std::make_shared<maqbool_ros::srv::RemoveKeyframes::Request>(
        make_remove_request(ids, robot_id_)));
  }

private:
  rclcpp::Node::SharedPtr node_;
  std::string robot_id_;
  rclcpp::Publisher<maqbool_ros::msg::Keyframe>::SharedPtr publisher_;
  rclcpp::Client<maqbool_ros::srv::Detect>::SharedPtr detect_;
  rclcpp::Client<maqbool_ros::srv::RemoveKeyframes>::SharedPtr remove_;
};

}  // namespace maqbool_orbslam3
