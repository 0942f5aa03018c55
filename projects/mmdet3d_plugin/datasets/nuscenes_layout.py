"""Fixed facts of the nuScenes v1.0 layout that the synthetic generator and the CMT pipeline share.

Camera and LiDAR calibrations are those of a real nuScenes log (n015, Singapore, scene-0061 era):
sensor->ego translations in metres, rotations as (w, x, y, z) quaternions, intrinsics in pixels for
1600x900 images. Class sizes are the nuScenes mean (w, l, h) in metres per detection class.
"""
import colorsys

import numpy as np

CAMERA_NAMES = ('CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK', 'CAM_BACK_LEFT', 'CAM_BACK_RIGHT')
LIDAR_NAME = 'LIDAR_TOP'
IMAGE_W, IMAGE_H = 1600, 900

# channel -> (translation, rotation wxyz, intrinsic 3x3)
CAMERA_CALIB = {
    'CAM_FRONT': ([1.70079118954, 0.0159456324149,
                   1.51095763913], [0.4998015430569128, -0.5030316162024876, 0.4997798114386805,
                                    -0.49737083824542755], [[1266.417203046554, 0.0, 816.2670197447984],
                                                            [0.0, 1266.417203046554, 491.50706579294757],
                                                            [0.0, 0.0, 1.0]]),
    'CAM_FRONT_RIGHT':
    ([1.5508477543, -0.493404796419,
      1.49574800619], [0.2060347966337182, -0.2026940577919598, 0.6824507824531167,
                       -0.6713610884174485], [[1260.8474446004698, 0.0, 807.968244525554],
                                              [0.0, 1260.8474446004698, 495.3344268742088], [0.0, 0.0, 1.0]]),
    'CAM_FRONT_LEFT':
    ([1.52387798135, 0.494631336551,
      1.50932822144], [0.6757265034669446, -0.6736266522251881, 0.21214015046209478,
                       -0.21122827103904068], [[1272.5979470598488, 0.0, 826.6154927353808],
                                               [0.0, 1272.5979470598488, 479.75165386361925], [0.0, 0.0, 1.0]]),
    'CAM_BACK': ([0.0283260309358, 0.00345136761476,
                  1.57910346144], [0.5037872666382278, -0.49740249788611096, -0.4941850223835201,
                                   0.5045496097725578], [[809.2209905677063, 0.0, 829.2196003259838],
                                                         [0.0, 809.2209905677063, 481.77842384512485], [0.0, 0.0,
                                                                                                        1.0]]),
    'CAM_BACK_LEFT': ([1.03569100218, 0.484795032713, 1.59097014818],
                      [0.6924185592174665, -0.7031619420114925, -0.11648342771943819,
                       0.11203317912370753], [[1256.7414812095406, 0.0, 792.1125740759628],
                                              [0.0, 1256.7414812095406, 492.7757465151356], [0.0, 0.0, 1.0]]),
    'CAM_BACK_RIGHT': ([1.0148780988, -0.480568219723, 1.56239545128],
                       [0.12280980120078765, -0.132400842670559, -0.7004305821388234,
                        0.690496031265798], [[1259.5137405846733, 0.0, 807.2529053838625],
                                             [0.0, 1259.5137405846733, 501.19579884916527], [0.0, 0.0, 1.0]]),
}
LIDAR_CALIB = ([0.943713, 0.0,
                1.84023], [0.7077955119163518, -0.006492242056004365, 0.010646214713995808, -0.7063073142877817])
# Velodyne HDL-32E: 32 beams from -30.67 to +10.67 degrees (20 Hz: 9 sweeps between 2 Hz keyframes).
LIDAR_ELEVATIONS_DEG = np.linspace(-30.67, 10.67, 32)
KEYFRAME_HZ = 2

# The 10 detection classes in mmdet3d's order, with the nuScenes category each is generated as.
DETECTION_CLASSES = ('car', 'truck', 'trailer', 'bus', 'construction_vehicle', 'bicycle', 'motorcycle', 'pedestrian',
                     'traffic_cone', 'barrier')
CLASS_CATEGORY = {
    'car': 'vehicle.car',
    'truck': 'vehicle.truck',
    'trailer': 'vehicle.trailer',
    'bus': 'vehicle.bus.rigid',
    'construction_vehicle': 'vehicle.construction',
    'bicycle': 'vehicle.bicycle',
    'motorcycle': 'vehicle.motorcycle',
    'pedestrian': 'human.pedestrian.adult',
    'traffic_cone': 'movable_object.trafficcone',
    'barrier': 'movable_object.barrier'
}
# mean (w, l, h) in metres
CLASS_SIZE_WLH = {
    'car': (1.95, 4.62, 1.73),
    'truck': (2.51, 6.93, 2.84),
    'trailer': (2.90, 12.29, 3.87),
    'bus': (2.94, 11.19, 3.47),
    'construction_vehicle': (2.73, 6.37, 3.19),
    'bicycle': (0.60, 1.70, 1.28),
    'motorcycle': (0.77, 2.11, 1.47),
    'pedestrian': (0.67, 0.73, 1.77),
    'traffic_cone': (0.41, 0.41, 1.07),
    'barrier': (2.53, 0.50, 0.98)
}
# (probability of moving, speed range m/s) per class; static classes never move.
CLASS_MOTION = {
    'car': (0.6, (2.0, 12.0)),
    'truck': (0.5, (2.0, 10.0)),
    'trailer': (0.3, (1.0, 6.0)),
    'bus': (0.5, (2.0, 9.0)),
    'construction_vehicle': (0.3, (0.5, 3.0)),
    'bicycle': (0.6, (1.5, 6.0)),
    'motorcycle': (0.6, (2.0, 10.0)),
    'pedestrian': (0.6, (0.5, 1.8)),
    'traffic_cone': (0.0, (0.0, 0.0)),
    'barrier': (0.0, (0.0, 0.0))
}
CLASS_INTENSITY = {
    'car': 40,
    'truck': 35,
    'trailer': 30,
    'bus': 45,
    'construction_vehicle': 50,
    'bicycle': 20,
    'motorcycle': 25,
    'pedestrian': 15,
    'traffic_cone': 90,
    'barrier': 60
}

ATTRIBUTE_NAMES = ('cycle.with_rider', 'cycle.without_rider', 'pedestrian.moving', 'pedestrian.standing',
                   'pedestrian.sitting_lying_down', 'vehicle.moving', 'vehicle.parked', 'vehicle.stopped')
VISIBILITY_LEVELS = (('1', 'v0-40'), ('2', 'v40-60'), ('3', 'v60-80'), ('4', 'v80-100'))
MOVING_SPEED = 0.2  # m/s; the threshold mmdet3d's NuScenesMetric uses to pick attributes from velocity


def attribute_for(name: str, speed: float) -> str:
    """nuScenes attribute of an object of detection class ``name`` moving at ``speed`` m/s ('' = none).

    Mirrors the rule mmdet3d's NuScenesMetric applies to predictions, so ground truth evaluated as a
    prediction has attribute error 0.
    """
    moving = speed > MOVING_SPEED
    if name in ('car', 'truck', 'trailer', 'construction_vehicle'):
        return 'vehicle.moving' if moving else 'vehicle.parked'
    if name == 'bus':
        return 'vehicle.moving' if moving else 'vehicle.stopped'
    if name in ('bicycle', 'motorcycle'):
        return 'cycle.with_rider' if moving else 'cycle.without_rider'
    if name == 'pedestrian':
        return 'pedestrian.moving' if moving else 'pedestrian.standing'
    return ''


def _class_palette():
    """BGR uint8 colour per class: 10 hues 36 degrees apart at high saturation (background is grey)."""
    out = {}
    for i, name in enumerate(DETECTION_CLASSES):
        r, g, b = colorsys.hsv_to_rgb(i / len(DETECTION_CLASSES), 0.85, 0.9)
        out[name] = (int(b * 255), int(g * 255), int(r * 255))
    return out


CLASS_COLOR_BGR = _class_palette()
