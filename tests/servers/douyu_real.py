"""Real Douyu messages (STT bodies), as other projects recorded them, for the mapper's tests."""

from __future__ import annotations

# OrdinaryRoad live-chat-client, DouyuCmdEnum.java (chatmsg example): a noble (nl 7) chatting.
CHAT = "type@=chatmsg/rid@=7750753/uid@=549977/nn@=一闪一闪亮品品/txt@=冷门歌手哎，声音独特哎/cid@=044c3bf3074b483275a44e0000000000/ic@=avatar@Sdefault@S08/level@=29/sahf@=0/nl@=7/cst@=1693107871294/bnn@=/bl@=0/brid@=0/hc@=/lk@=/dms@=8/pdg@=26/pdk@=86/ext@=/"

# qianjiachun/douyu-monitor useWebsocket.js (a super admin's chatmsg, recorded as JSON there;
# written back as the STT it came as, the avatar path escaped).
SUPER_ADMIN_CHAT = "type@=chatmsg/rid@=4624967/uid@=409227923/nn@=鲨鱼仟仟/txt@=提醒主播，请主播调整自己的上装，请勿深V着装。请尽快调整，谢谢合作。/cid@=609ef1a236494f5c9c85300000000000/ic@=avatar_v3@S202105@S7b4b257d45c74deab9ff4e57746fd8a5/level@=7/sahf@=1/admzq@=1/pg@=5/cst@=1639922444040/bl@=0/brid@=0/pdg@=35/pdk@=81/"

# A .NET Douyu client's tests (DgbMessageTest): 30 fan glow sticks (gift 824) with a fan badge.
GIFT_824 = "type@=dgb/rid@=252802/gfid@=824/gs@=1/uid@=129851912/nn@=晴臣183/ic@=avatar@Sdefault@S12/eid@=0/level@=21/dw@=0/gfcnt@=30/hits@=30/bcnt@=1/bst@=5/ct@=0/el@=eid@AA=1500000113@ASetp@AA=1@ASsc@AA=1@ASef@AA=0@AS@S/cm@=0/bnn@=莉卡/bl@=11/brid@=2971401/hc@=a389dd77fc28612735c07b6ad218e628/sahf@=0/fc@=0/cbid@=87616/gpf@=1/"

# A Python Douyu gift sender's tests: the dgb the server broadcast for a gift it sent.
GIFT_20595 = "type@=dgb/rid@=673305/gfid@=20595/gs@=0/uid@=331816442/nn@=娉＄繀/ic@=avatar_v3@S201910@Sf3ed359595964ea59d146cf01349cf53/eid@=0/eic@=20053/level@=5/dw@=0/gfcnt@=1/hits@=1/bcnt@=1/bst@=3/ct@=0/el@=/cm@=0/bnn@=/bl@=0/brid@=0/hc@=/sahf@=0/fc@=0/bnid@=1/bnl@=1/"

# douyu-monitor useWebsocket.js comments: a noble renewed (rnewbc) and opened (anbc); drid is
# the room it was bought in (rid 0: broadcast to every room).
NOBLE_RENEWED = "type@=rnewbc/rid@=0/gid@=0/bt@=1/uid@=21586042/unk@=卡卡罗特u丶/uic@=avatar_v3@S202109@Sb2f34417c7f54595b14f8b3ad9243217/drid@=8780046/donk@=妮妮别吃了/nl@=5/"
NOBLE_OPENED = "type@=anbc/rid@=0/gid@=0/bt@=1/uid@=420070299/hrp@=1/unk@=王嘉尔一个人/uic@=avatar_v3@S202112@Sa60b00aa5e5845878ae43ff8299122bf/drid@=7034970/donk@=野鸡娘娘/nl@=4/ts@=1641350115/fov@=1/"
# The same comments (recorded as JSON, written back as STT): diamond fan opened / renewed, and
# a fan badge level-up (blab).
DIAMOND_FAN = "type@=odfbc/uid@=341314282/rid@=5189167/nick@=nt五香蛋/icon@=avatar_v3@S202103@S04d3d252139f4620bd417c6bef673bd6/level@=36/nl@=0/pg@=1/fl@=22/bn@=歆崽/"
DIAMOND_RENEWED = "type@=rndfbc/uid@=573096/rid@=5189167/nick@=一只小洋丶/icon@=avatar_v3@S202111@Sd7d383be4c874af0b50e3d9eb58ad462/level@=39/nl@=0/pg@=1/fl@=24/bn@=歆崽/"
BADGE_UP = (
    "type@=blab/uid@=377858580/nn@=Heroes728/lbl@=13/bl@=14/ba@=1/bnn@=教主丶/diaf@=0/rid@=312212/"
)

# A Java Douyu client's tests (goodMessage1_newblackres): a moderator's mute in room 2020877.
BAN = "/timestamp@=1513608150024/messageId@=89329/type@=newblackres/ret@=0/rid@=2020877/gid@=0/otype@=1/sid@=9853292/did@=181267795/snic@=TinyTank丶/dnic@=N3v4z6A6/endtime@=1513694549/"

# A Dart live-danmaku library's tests: a super danmaku (comm_chatmsg, btype superDanmu, its
# sender and text nested, cprice 3000 分), and a pandora notice sharing the type (recorded there
# 2026-09-27, price 0). Changed: a uid added to the super danmaku's sender.
SUPER_DANMU = "type@=comm_chatmsg/btype@=superDanmu/chatmsg@=nn@A=付费观众@Suid@A=77@Stxt@A=加油@Sic@A=avatar_v3@AS202603@ASabc@S/cprice@=3000/cet@=60/now@=1790519453000/"
PANDORA = "btype@=pandora/chatmsg@=nn@A=付费观众@Stxt@A=加油@S/range@=2/cprice@=0/type@=comm_chatmsg/cet@=0/now@=1790518114673/"
