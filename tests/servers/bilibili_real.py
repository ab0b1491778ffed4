"""Real Bilibili live commands, as other projects recorded them, for the mapper's tests.

Unless marked otherwise, from the live danmaku reference in sjh8130/bili_danmaku (Testing.md,
"直播弹幕" examples), which redacts numbers as 9999999999 and names as "xxx"/"***"; the field
layout is the service's.
"""

from __future__ import annotations

import json
from typing import Any

# DANMU_MSG:3:7:1:1:1:1, "大弹幕": an advanced (mode 7) danmaku, its text a JSON array.
ADVANCED: dict[str, Any] = json.loads(
    '{"cmd":"DANMU_MSG:3:7:1:1:1:1","info":[[0,7,100,16777215,9999999999,9999999999,0,"f4dbdf21",0,null,null,null,0,"{}","{}",{"mode":0,"show_player_type":0,"extra":"{\\"mode\\":0,\\"send_from_me\\":false,\\"color\\":16777215,\\"dm_type\\":0,\\"font_size\\":100,\\"player_mode\\":7,\\"content\\":\\"[1.0,0.0,\\\\\\"0.8-0.5\\\\\\",10.0,\\\\\\"哈哈哈哈\\\\\\",0.0,0.0,0.0,0.0,10000,0,true,\\\\\\"黑体\\\\\\",1]\\"}"},null,null],"[1.0,0.0,\\"0.8-0.5\\",10.0,\\"哈哈哈哈\\",0.0,0.0,0.0,0.0,10000,0,true,\\"黑体\\",1]",[0,"***",1,0,0,10000,1,""],null,[],[],0,0,null,{"ts":9999999999,"ct":"82145D85"},0,0,null,null,0,0,[0]]}'
)

# "抽奖弹幕": the line a 天选时刻 lottery sends for a viewer (info[0][9] 2).
LOTTERY: dict[str, Any] = json.loads(
    '{"cmd":"DANMU_MSG","info":[[0,1,25, 16777215,9999999999,9999999999,0,"xxx",0,2,0,"",0,"{}","{}",{},{"activity_identity":"5475890","activity_source":1,"not_show":1},0],"蔷薇与铳枪",[0,"***",1,0,0,10000,1,""],[],[0,0,0,">50000",0],["",""],0,0,null,{"ts":9999999999,"ct":"xxx"},0,0,null,null,0,7,[0],null]}'
)

# "有限制的弹幕" (402220): another lottery entry (info[0][9] 2, activity_source 1).
LIMITED: dict[str, Any] = json.loads(
    '{"cmd":"DANMU_MSG:4:0:2:2:2:0","info":[[0,1,25,9999999999,9999999999,0,0,"xxx",0,2,0,"",0,"{}","{}",{"extra":"...","mode":0,"show_player_type":0,"user":{}},{"activity_identity":"13325340","activity_source":1,"not_show":1},0],"九三阅兵，为祖国打call",[9999999999,"xxx",0,0,0,10000,1,""],[],[0,0,9999999999,">50000",0],["",""],0,0,null,{"ct":"xxx","ts":9999999999},0,0,null,null,0,24,[0],null]}'
)

# POPULARITY_RED_POCKET_V2_NEW: a red envelope of 20 电池 (2 CNY).
RED_POCKET_V2: dict[str, Any] = json.loads(
    '{"cmd":"POPULARITY_RED_POCKET_V2_NEW","data":{"lot_id":9999999999,"start_time":9999999999,"current_time":9999999999,"wait_num":9999999999,"wait_num_v2":9999999999,"uname":"xxx","uid":9999999999,"action":"送出","num":1,"gift_name":"红包","gift_id":13000,"price":20,"name_color":"#xxxxxx","medal_info":9999999999,"wealth_level":123,"group_medal":null,"is_mystery":false,"sender_info":9999999999,"gift_icon":"","rp_type":0}}'
)

# ROOM_BLOCK_MSG: a permanent ban (vaild_period 永久).
BAN: dict[str, Any] = json.loads(
    '{"cmd":"ROOM_BLOCK_MSG","data":{"block_expired":2145888000,"dmscore":9999999999,"operator":9999999999,"uid":9999999999,"uname":"xxx","vaild_period":"永久"},"uid":9999999999,"uname":"xxx"}'
)

# Older ROOM_BLOCK_MSG shapes, as recorded in other projects' comments: the uid only at the top
# level (bilibili live danmaku TypeScript typings, 2019) and data.operator 1 (Danmuji, Java).
BAN_TOP_LEVEL: dict[str, Any] = json.loads(
    '{"cmd":"ROOM_BLOCK_MSG","uid":"12482716","uname":"筱小公主","roomid":5501645,"_roomid":5501645}'
)
BAN_OPERATOR: dict[str, Any] = json.loads(
    '{"cmd":"ROOM_BLOCK_MSG","uid":27897180,"uname":"小小的小兔团儿","data":{"uid":27897180,"uname":"小小的小兔团儿","operator":1}}'
)
